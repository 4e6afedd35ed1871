"""A backend run as a child process, spoken to with newline-delimited JSON on its pipes.

The child gets its own process group so that stopping it stops whatever it spawned (npx, shells),
and nothing is orphaned when the router exits. Responses are matched to requests by id; anything
else goes to the request it belongs to (by progress token or related id) or to `on_unsolicited`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import Mapping
from typing import Any

import anyio
import orjson
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

from router.errors import BackendUnavailable, BackendUnreachable
from router.upstream.base import Message, MessageHandler, refusal

log = logging.getLogger("toolmesh.upstream")

MAX_LINE = 64 * 1024 * 1024
RELATED_REQUEST_KEY = "io.modelcontextprotocol/related-request-id"
STDERR_TAIL = 5  # lines of a child's stderr logged with its exit


class _Pending:
    """One request waiting for its response."""

    __slots__ = ("done", "on_message", "reply")

    def __init__(self, on_message: MessageHandler | None) -> None:
        self.done = anyio.Event()
        self.reply: Message | BaseException | None = None
        self.on_message = on_message


class StdioChannel:
    def __init__(
        self,
        server: str,
        command: str,
        args: tuple[str, ...],
        env: Mapping[str, str],
        cwd: str | None,
        stop_timeout: float = 3.0,
    ) -> None:
        self.server = server
        self.argv = [command, *args]
        self.env = {**os.environ, **env}
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.on_unsolicited: MessageHandler | None = None
        self._process: Process | None = None
        self._pending: dict[Any, _Pending] = {}
        self._progress: dict[Any, _Pending] = {}
        self._write_lock = anyio.Lock()
        self._exit_reason = "not started"
        self.exited = anyio.Event()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._stderr_done = anyio.Event()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def open(self, task_group: TaskGroup) -> None:
        try:
            self._process = await anyio.open_process(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise BackendUnavailable(self.server, f"cannot start '{self.argv[0]}': {exc.strerror}") from None
        self._exit_reason = "running"
        self._stderr_done = anyio.Event()
        task_group.start_soon(self._read_stdout, self._process)
        task_group.start_soon(self._read_stderr, self._process)

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await self._stop(process)
        self._fail_pending("the router closed the connection")

    async def request(
        self, message: Message, headers: Mapping[str, str], on_message: MessageHandler | None = None
    ) -> Message:
        pending = _Pending(on_message)
        request_id = message["id"]
        self._pending[request_id] = pending
        token = _progress_token(message)
        if token is not None:
            self._progress[token] = pending
        try:
            await self._write(message)
            await pending.done.wait()
        finally:
            self._pending.pop(request_id, None)
            if token is not None:
                self._progress.pop(token, None)
        if isinstance(pending.reply, BaseException):
            raise pending.reply
        assert pending.reply is not None
        return pending.reply

    async def notify(self, message: Message, headers: Mapping[str, str]) -> None:
        await self._write(message)

    async def listen(self, headers: Mapping[str, str]) -> None:
        """Unsolicited messages arrive on stdout with everything else: nothing to open, but this
        lasts as long as the process, like an HTTP backend's GET stream (what runs beside it, the
        upstream resource subscriptions, must not end with it)."""
        await self.exited.wait()

    async def end_session(self, headers: Mapping[str, str]) -> None:
        return

    async def _write(self, message: Message) -> None:
        """Unreachable when the child is gone: the message never reached it."""
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            raise BackendUnreachable(self.server, self._exit_reason)
        try:
            async with self._write_lock:
                await process.stdin.send(orjson.dumps(message) + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise BackendUnreachable(self.server, "its stdin is closed") from None

    async def _read_stdout(self, process: Process) -> None:
        assert process.stdout is not None
        reader = BufferedByteReceiveStream(process.stdout)
        try:
            while True:
                line = await reader.receive_until(b"\n", MAX_LINE)
                if line.strip():
                    await self._dispatch(line)
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
        ):
            pass
        except anyio.DelimiterNotFound:
            log.error("backend wrote an over-long line", extra={"server": self.server})
        code = await process.wait()
        with anyio.move_on_after(0.2):  # the last words of a crash are often why it crashed
            await self._stderr_done.wait()
        self._exit_reason = f"its process exited with code {code}"
        log.log(
            logging.INFO if self._process is not process else logging.WARNING,  # stopped by us: expected
            "stdio backend exited",
            extra={"server": self.server, "code": code, "stderr_tail": list(self.stderr_tail)},
        )
        self._fail_pending(self._exit_reason)
        self.exited.set()

    async def _read_stderr(self, process: Process) -> None:
        assert process.stderr is not None
        reader = BufferedByteReceiveStream(process.stderr)
        try:
            while True:
                text = (await reader.receive_until(b"\n", MAX_LINE)).decode(errors="replace")
                self.stderr_tail.append(text)
                log.debug("backend stderr", extra={"server": self.server, "line": text})
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.ClosedResourceError):
            pass
        finally:
            self._stderr_done.set()

    async def _dispatch(self, line: bytes) -> None:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("backend wrote a line that is not JSON", extra={"server": self.server})
            return
        if not isinstance(message, dict):
            return
        if "method" not in message:
            pending = self._pending.get(message.get("id"))
            if pending is not None:
                pending.reply = message
                pending.done.set()
            return
        owner = self._owner(message)
        if owner is not None and owner.on_message is not None:
            await owner.on_message(message)
        elif "id" in message and (asking := self._askers()) > 1:
            await self._write({"jsonrpc": "2.0", "id": message["id"], **_unattributed(message, asking)})
        elif self.on_unsolicited is not None:
            await self.on_unsolicited(message)

    def _owner(self, message: Message) -> _Pending | None:
        """The call a message belongs to, when something on the wire says so.

        Progress names its token. Over stdio nothing else is on the wire by default: neither the
        TypeScript nor the Python SDK puts the related request id anywhere but in transport
        metadata, which a pipe does not carry. A server may still name the call in the message's
        `_meta` (the related-request-id key, or the call's progress token, which the router made
        unique), and is then followed. A request with no such tie, while exactly one call waits,
        can only be that call's; so is a log message then (SDK servers log from inside the call,
        and the call's client is the one that would see it on a direct connection)."""
        params = message.get("params") or {}
        token = params.get("progressToken")
        if token is not None:
            return self._progress.get(token)
        meta = params.get("_meta")
        if isinstance(meta, dict):
            related = meta.get(RELATED_REQUEST_KEY)
            if related is not None:
                return self._pending.get(related)
            token = meta.get("progressToken")
            if token is not None and token in self._progress:
                return self._progress[token]
        if ("id" in message or message.get("method") == "notifications/message") and self._askers() == 1:
            return next(pending for pending in self._pending.values() if pending.on_message is not None)
        return None

    def _askers(self) -> int:
        """Calls in flight that could be asked something (the router's own requests cannot)."""
        return sum(1 for pending in self._pending.values() if pending.on_message is not None)

    def _fail_pending(self, reason: str) -> None:
        for pending in list(self._pending.values()):
            if not pending.done.is_set():
                pending.reply = BackendUnavailable(self.server, reason)
                pending.done.set()

    async def _stop(self, process: Process) -> None:
        """SIGTERM the process group, then SIGKILL if it lingers."""
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            with anyio.move_on_after(self.stop_timeout):
                await process.wait()
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGKILL)
            with anyio.move_on_after(self.stop_timeout), anyio.CancelScope(shield=True):
                await process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # stragglers the child left in its group
        await process.aclose()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _unattributed(message: Message, calls: int) -> Message:
    """The answer a request gets when several calls are in flight and it does not say whose it is:
    the router refuses rather than put it before a client that may not be the one asked."""
    return refusal(
        str(message.get("method")),
        f"{calls} calls are in flight on this stdio server and the request does not say which one asks "
        "(no related request id or progress token in its _meta)",
    )


def _progress_token(message: Message) -> Any:
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    meta = params.get("_meta")
    return meta.get("progressToken") if isinstance(meta, dict) else None
