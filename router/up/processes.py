"""The one process supervisor: `toolmesh up`, the tests and the benchmarks all run children with it.

- `ManagedProcess`: a child in its own session and process group, output to a log file of its
  own, readiness waits that fail early (with the log's last lines) if it exits, stopped by PID:
  SIGTERM to the group, SIGKILL after a grace period, then any descendant that outlived the group
  (noted from /proc while it ran) is killed by PID too. Never by name.
- `Supervisor`: the children of one run, stopped newest first.
- `wait_until`: poll a readiness check, optionally watching a process.
- `free_port`: a port that was free a moment ago; `free_ports`: several, all different.

Processes still running when the interpreter exits are stopped by an atexit hook.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import http.client
import io
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import anyio.to_thread

from router.up import ClusterError

STOP_GRACE = 5.0
POLL_INTERVAL = 0.05

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


class ProcessError(ClusterError):
    """A process could not be started, exited early, or was not ready in time; the message says
    which, with the last lines of its log."""


_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


# the ports this process handed out last: not handed out again while their owners may still be
# starting (a test's server and the router in front of it draw one after the other)
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=256)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago. It is drawn from the 10,000 ports below the
    range the OS hands out to outgoing connections (Linux), so that no client socket opened in the
    meantime (a router's, a test's) takes it before its owner binds it, as a port the OS picked
    could be: Envoy once failed to bind its admin port so. Elsewhere, or if none of 50 draws is
    free, the OS picks one."""
    try:
        low = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    draws = [random.randrange(max(1024, low - 10_000), low) for _ in range(50)] if low > 2048 else []
    for port in [*draws, 0]:
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            found = int(sock.getsockname()[1])
            _HANDED_OUT.append(found)
            return found
    raise OSError(f"no free TCP port on {host}")


def free_ports(count: int, host: str = "127.0.0.1", taken: Iterable[int] = ()) -> list[int]:
    """`count` distinct ports that were free a moment ago, none of them in `taken`: draws of
    `free_port` may repeat (none is bound until its owner starts), and a cluster whose Envoy and
    one of its routers were handed the same port fails to start."""
    seen = set(taken)
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in seen:
            seen.add(port)
            ports.append(port)
    return ports


def _children_of() -> dict[int, list[int]]:
    """Parent pid -> child pids, read from /proc (Linux); empty elsewhere."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the ppid follows the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (zombies included)."""
    return _children_of().get(pid, [])


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first."""
    tree, found, queue = _children_of(), [], [pid]
    while queue:
        for child in tree.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    process: ManagedProcess | None = None,
    interval: float = POLL_INTERVAL,
    give_up: Callable[[], bool] | None = None,
) -> float:
    """Poll `ready()` until it is true and return the seconds that took.

    A check that cannot connect yet (OSError, an incomplete HTTP answer) counts as not ready.
    Raises `ProcessError` if `process` exits first, after `timeout` seconds, or when `give_up()`
    becomes true (someone asked to stop).
    """
    start = time.monotonic()
    while True:
        try:
            if ready():
                return time.monotonic() - start
        except (OSError, http.client.HTTPException):
            pass
        if process is not None and process.returncode is not None:
            raise process.failure(f"exited with status {process.returncode} while waiting for {what}")
        if give_up is not None and give_up():
            raise ProcessError(f"stopped while waiting for {what}")
        if time.monotonic() - start >= timeout:
            if process is not None:
                raise process.failure(f"not ready within {timeout:.1f}s (waiting for {what})")
            raise ProcessError(f"not ready within {timeout:.1f}s (waiting for {what})")
        time.sleep(interval)


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _http_answers(host: str, port: int, path: str) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        # No Accept header, and the body is never read: an MCP endpoint answers 4xx at once,
        # rather than opening an SSE stream that would never end.
        connection.request("GET", path)
        connection.getresponse()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class ManagedProcess:
    """A child in its own session and process group whose stdout and stderr go to a log file.

    Usable as a context manager (sync or async): entering starts it, leaving stops it. The log is
    `log_dir/<name>.log` (`<name>-2.log` and so on if that exists already, so two runs never share
    a file); `log_dir` defaults to a fresh temp directory. `env` is merged over the current
    environment.
    """

    def __init__(
        self,
        argv: Sequence[str | Path],
        *,
        name: str | None = None,
        log_dir: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.argv = [str(arg) for arg in argv]
        self.name = name or Path(self.argv[0]).name
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.log_dir = (
            Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="toolmesh-proc-"))
        )
        self.log_path = self.log_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', self.name)}.log"
        self.known: set[int] = set()
        """Descendants seen while it ran, killed by PID on stop if they outlive the group."""
        self._popen: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process (once); a command that cannot run is a `ProcessError`."""
        if self._popen is not None:
            raise ProcessError(f"{self.name} was already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._new_log() as log:
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from None
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    def _new_log(self) -> io.BufferedWriter:
        stem, number = self.log_path.stem, 1
        while True:
            try:
                return self.log_path.open("xb")
            except FileExistsError:
                number += 1
                self.log_path = self.log_path.with_name(f"{stem}-{number}.log")

    @property
    def started(self) -> bool:
        return self._popen is not None

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise ProcessError(f"{self.name} has not been started")
        return self._popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while the process runs."""
        return self.popen.poll()

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit on its own and return its status."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self.failure(f"did not exit within {timeout:.1f}s") from None

    def remember_descendants(self) -> None:
        """Note the processes this one spawned, so they can be stopped even if it dies first."""
        if self.is_running():
            self.known.update(descendants(self.pid))

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM the process group, SIGKILL it after `grace` s, then kill by PID any descendant
        that outlived it. Idempotent; returns the exit status (None if never started)."""
        popen = self._popen
        if popen is None:
            return None
        try:
            self.remember_descendants()
            if popen.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    popen.wait(grace)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    popen.wait(grace)
            self._signal_group(signal.SIGKILL)  # anything left in its group
            deadline = time.monotonic() + grace
            for pid in sorted(self.known):
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(POLL_INTERVAL)  # a well-behaved child is stopping its own children
                if alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self)
        return popen.returncode

    def _signal_group(self, signum: signal.Signals) -> None:
        # start_new_session=True made the process a session and group leader: pgid == pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    # -- readiness ------------------------------------------------------------------------------

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> float:
        """`wait_until` while watching this process."""
        return wait_until(ready, timeout, what, process=self)

    def wait_port(self, port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
        """Wait until `host:port` accepts TCP connections."""
        self.wait_until(lambda: _port_open(host, port), timeout, f"port {host}:{port}")

    def wait_http(self, url: str, timeout: float = 15.0) -> None:
        """Wait until `url` answers an HTTP GET with any status (a 4xx still means the server is up)."""
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"not an http url: {url!r}")
        host, port, path = parts.hostname, parts.port or 80, parts.path or "/"
        self.wait_until(lambda: _http_answers(host, port, path), timeout, f"HTTP at {url}")

    def wait_log(self, pattern: str | re.Pattern[str], timeout: float = 15.0) -> re.Match[str]:
        """Wait until the log matches `pattern` and return the match."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def ready() -> bool:
            match = regex.search(self.log_text())
            if match is not None:
                found.append(match)
            return match is not None

        self.wait_until(ready, timeout, f"log line matching {regex.pattern!r}")
        return found[0]

    def failure(self, what: str) -> ProcessError:
        """A `ProcessError` naming this process, its command and the last lines of its log."""
        pid = self._popen.pid if self._popen else "not started"
        return ProcessError(
            f"{self.name} (pid {pid}) {what}\ncommand: {' '.join(self.argv)}\n"
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    # -- output ---------------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- context managers -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid {self._popen.pid}, rc {self._popen.poll()}"
        return f"<ManagedProcess {self.name} ({state})>"


class Supervisor:
    """The processes of one run, sharing a log directory and a working directory; `stop_all()`
    (also on leaving the `with`) stops them newest first."""

    def __init__(self, log_dir: str | Path | None = None, cwd: str | Path | None = None) -> None:
        self.log_dir = (
            Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="toolmesh-proc-"))
        )
        self.cwd = cwd
        self.started: list[ManagedProcess] = []

    def start(
        self, argv: Sequence[str | Path], name: str, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """Start `argv` as `name`, logging to `log_dir/<name>.log`."""
        return self.add(ManagedProcess(argv, name=name, log_dir=self.log_dir, env=env, cwd=self.cwd))

    def add(self, process: ManagedProcess) -> ManagedProcess:
        """Start a process built elsewhere and make it one of this run's."""
        self.started.append(process)  # first: a failed start is still stopped with the rest
        return process.start()

    def stop(self, process: ManagedProcess, grace: float = STOP_GRACE) -> int | None:
        if process in self.started:
            self.started.remove(process)
        return process.stop(grace)

    def remember_descendants(self) -> None:
        for process in self.started:
            process.remember_descendants()

    def pids(self) -> set[int]:
        """Every PID this run may have left behind: the running children and their known descendants."""
        found: set[int] = set()
        for process in self.started:
            if process.is_running():
                found.add(process.pid)
            found |= process.known
        return found

    def stop_all(self, grace: float = STOP_GRACE) -> list[int]:
        """Stop every process, newest first; returns the PIDs still alive after that."""
        self.remember_descendants()
        pids = self.pids()
        for process in reversed(self.started):
            process.stop(grace)
        self.started.clear()
        return sorted(pid for pid in pids if alive(pid))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


@atexit.register
def _stop_all() -> None:
    """Safety net: stop every managed process that is still running at interpreter exit."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for process in live:
        with contextlib.suppress(Exception):
            process.stop(grace=2.0)
