"""The audit trail: one JSON record per call an agent makes, written off the request path.

A record says who (agent, a handle of the session), what (method, tool or URI, the size and
SHA-256 of the arguments — the arguments themselves only when enabled, with configured fields
redacted), where (server, instance), how it ended (outcome, error code), how long it took, and
the trace it belongs to. Tokens never reach this module, and the session id — a bearer secret in
the 2025 era — is recorded only as a short hash.

`AuditLog.record()` never blocks and never fails a request: records go into a bounded buffer that
a background task drains in batches to every sink; if the sinks fall behind, records are dropped
and counted (`toolmesh_audit_dropped_total`). Sinks: JSON lines on stdout or in a file (written
from a worker thread), and a NATS subject (router/cluster/audit.py) through any object with `async publish(subject, data)`.
"""

from __future__ import annotations

import hashlib
import logging
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
    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def write(self, lines: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in lines)
        await anyio.to_thread.run_sync(self._append, data)

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as file:
            file.write(data)


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
    ) -> None:
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
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
        record.update(
            outcome=outcome,
            error_code=error_code,
            latency_ms=round(seconds * 1000, 3),
            trace_id=trace_id,
            span_id=span_id,
        )
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
        """What is still buffered gets two more seconds to reach the sinks."""
        with anyio.move_on_after(2):
            await self.flush()

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
