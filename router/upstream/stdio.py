"""A backend run as a child process, spoken to with newline-delimited JSON on its pipes.

The child gets its own process group so that stopping it stops whatever it spawned (npx, shells),
and nothing is orphaned when the router exits. Responses are matched to requests by id; anything
else goes to the request it belongs to (by progress token or related id) or to `on_unsolicited`
(`demux.py`, shared with the HTTP+SSE channel).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import Mapping

import anyio
import orjson
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

from router.errors import BackendUnavailable, BackendUnreachable
from router.nesting import to_json
from router.upstream.base import Message, MessageHandler
from router.upstream.demux import Demux

log = logging.getLogger("toolmesh.upstream")

MAX_LINE = 64 * 1024 * 1024
STDERR_TAIL = 5  # lines of a child's stderr logged with its exit


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
        self.demux = Demux(server, self._write, "stdio")
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
        self.demux.fail_pending("the router closed the connection")

    async def request(
        self, message: Message, headers: Mapping[str, str], on_message: MessageHandler | None = None
    ) -> Message:
        return await self.demux.request(message, on_message)

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
                await process.stdin.send(to_json(message) + b"\n")
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
        self.demux.fail_pending(self._exit_reason)
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
        await self.demux.dispatch(message, self.on_unsolicited)

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
