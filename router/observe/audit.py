"""The audit trail: one JSON record per call an agent makes, written off the request path.

A record says which request (`request_id`), who (agent, a handle of the session), what (method,
tool or URI, the size and SHA-256 of the arguments — the arguments themselves only when enabled,
with configured fields redacted — and the size and SHA-256 of the result), where (server,
instance), how it ended (outcome, error code), how long it took, when, and the trace it belongs
to. Tokens never reach this module, and the session id — a bearer secret in
the 2025 era — is recorded only as a short hash.

`AuditLog.record()` never blocks and never fails a request: records go into a bounded buffer that
a background task drains in batches to every sink; if the sinks fall behind, records are dropped
and counted (`toolmesh_audit_dropped_total`). Sinks: JSON lines on stdout or in a
hash-chained file (written from a worker thread; `toolmesh audit verify` checks it), and a NATS
JetStream stream (router/cluster/audit.py) through any object with `async publish(subject, data)`.
"""

from __future__ import annotations

import hashlib
import logging
import random
import sys
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio
import orjson
from anyio.abc import TaskGroup

from router.lifecycle import Service
from router.observe.audit_chain import Chain

log = logging.getLogger("toolmesh.audit")

BUFFER = 10_000
BATCH_DELAY = 0.02
REDACTED = "[redacted]"


class Sink(Protocol):
    name: str

    async def write(self, lines: list[bytes]) -> None:
        """Write a batch of serialized records (no trailing newlines)."""


class Publisher(Protocol):
    """What the NATS sink (router/cluster/audit.py) needs from a connection: the router's
    `NatsLink`, or nats-py's `Client`."""

    async def publish(self, subject: str, payload: bytes) -> object: ...


class StreamSink:
    name = "stdout"

    async def write(self, lines: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in lines)
        await anyio.to_thread.run_sync(_write_stdout, data)


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


class FileSink:
    """JSON lines appended to a file, hash-chained (router/observe/audit_chain.py): each line
    carries the hash of the one before, so `toolmesh audit verify` finds an edited, removed or
    reordered record. The file is only ever appended to (opened in append mode per batch, from
    a worker thread); a router restarted on the same file continues its chain. One writer per
    file: replicas each write their own."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chain: Chain | None = None  # read from the file on the first write
        self.records = 0

    async def write(self, lines: list[bytes]) -> None:
        await anyio.to_thread.run_sync(self._append, lines)

    def _append(self, lines: list[bytes]) -> None:
        with self.path.open("ab") as file:
            if self.chain is None:
                self.chain = Chain.continuing(self.path)
                if file.tell() > 0 and _last_byte(self.path) != b"\n":
                    file.write(b"\n")  # a line cut short by a crash stays visible, on its own line
            chain = self.chain
            file.write(b"".join(chain.link(line) + b"\n" for line in lines))
        self.records += len(lines)

    @property
    def head(self) -> str | None:
        return self.chain.head.decode() if self.chain is not None else None


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as file:
        file.seek(-1, 2)
        return file.read(1)


class AuditLog(Service):
    """Runs as a service (`async with`): drains the buffer in the background, flushes on leaving."""

    def __init__(
        self,
        sinks: Iterable[Sink],
        *,
        arguments: bool = False,
        redact: Iterable[str] = (),
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.arguments = arguments
        self.redact = frozenset(field.lower() for field in redact)
        self.on_drop = on_drop
        self._buffer: deque[bytes] = deque()
        self._wake = anyio.Event()

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    def record(
        self,
        *,
        agent: str,
        session: str | None,
        method: str,
        target: str | None,
        server: str | None,
        instance: str | None,
        arguments: Any,
        outcome: str,
        error_code: int | None,
        seconds: float,
        trace_id: str,
        span_id: str,
        era: str,
        via: str,
        request_id: str | None = None,
        result: Any = None,
        reason: str | None = None,
    ) -> None:
        """`request_id` names the request (the router's span id for it, which ties the record to
        its trace); `result` is hashed (SHA-256 of its JSON with sorted keys), never stored."""
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "request_id": request_id or span_id or f"{random.getrandbits(64):016x}",
            "agent": agent,
            "session": session_handle(session),
            "era": era,
            "via": via,
            "method": method,
            "target": target,
            "server": server,
            "instance": instance,
        }
        if arguments is not None:
            encoded = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
            record["arguments_bytes"] = len(encoded)
            record["arguments_sha256"] = hashlib.sha256(encoded).hexdigest()
            if self.arguments:
                record["arguments"] = self._redacted(arguments)
        if result is not None:
            encoded = (
                result if isinstance(result, bytes) else orjson.dumps(result, option=orjson.OPT_SORT_KEYS)
            )
            record["result_bytes"] = len(encoded)
            record["result_sha256"] = hashlib.sha256(encoded).hexdigest()
        record.update(
            outcome=outcome,
            error_code=error_code,
            latency_ms=round(seconds * 1000, 3),
            trace_id=trace_id,
            span_id=span_id,
        )
        if reason is not None:  # why a policy condition denied the call
            record["reason"] = reason
        if len(self._buffer) >= BUFFER:
            if self.on_drop is not None:
                self.on_drop()
            return
        self._buffer.append(orjson.dumps(record))
        self._wake.set()

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: REDACTED if key.lower() in self.redact else self._redacted(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._redacted(item) for item in value]
        return value

    async def start(self, tg: TaskGroup) -> None:
        if self.enabled:
            tg.start_soon(self._drain)

    async def stop(self) -> None:
        """What is still buffered gets two more seconds to reach the sinks. The head of each
        chained file is logged: an anchor outside the file for `toolmesh audit verify --head`."""
        with anyio.move_on_after(2):
            await self.flush()
        for sink in self.sinks:
            if isinstance(sink, FileSink) and sink.head is not None:
                log.info("audit chain head", extra={"path": str(sink.path), "head": sink.head})

    async def _drain(self) -> None:
        """Drain the buffer to every sink until cancelled; a failing sink is logged, not fatal."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            await anyio.sleep(BATCH_DELAY)  # let a burst gather: one write per batch, not per call
            await self.flush()

    async def flush(self) -> None:
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), 512))]
            for sink in self.sinks:
                try:
                    await sink.write(batch)
                except Exception as exc:  # a sink's failure must not stop the others or the router
                    log.error("audit sink failed", extra={"sink": sink.name, "reason": repr(exc)})


def session_handle(session_id: str | None) -> str | None:
    """A stable, non-secret handle for a session id (which is itself a bearer credential)."""
    if session_id is None:
        return None
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]
