"""Run real MCP servers as subprocesses in tests.

- `ManagedProcess`: a subprocess in its own process group, output to a log file, readiness waits,
  stop by process group (SIGTERM, then SIGKILL); an atexit hook stops whatever is still running.
- The sample backend (`tests/servers/sample.py`): `sample_server_http`, `sample_server_stdio_entry`.
- npm reference servers (installed once into ``.cache/npm``): `everything_stdio_entry`,
  `everything_http`, `memory_stdio_entry`.
- `write_catalog` writes an ``{"mcpServers": ...}`` catalog file; `stdio_parameters` turns a stdio
  entry into the SDK's `StdioServerParameters`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import pytest
from mcp.client.stdio import StdioServerParameters

REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_CACHE_DIR = REPO_ROOT / ".cache" / "npm"

EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything"
EVERYTHING_VERSION = "2026.8.31"
MEMORY_PACKAGE = "@modelcontextprotocol/server-memory"
MEMORY_VERSION = "2026.8.31"
NPM_PACKAGES: dict[str, str] = {EVERYTHING_PACKAGE: EVERYTHING_VERSION, MEMORY_PACKAGE: MEMORY_VERSION}

Era = Literal["both", "legacy", "modern"]

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()
_POLL_INTERVAL = 0.05


class ProcessError(RuntimeError):
    """A managed process failed to start, exited early, or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """A subprocess in its own process group whose stdout and stderr go to a log file.

    Usable as a context manager (sync or async): entering starts it, leaving stops it. `stop()`
    signals the whole process group (SIGTERM, then SIGKILL after `grace` seconds), so children of
    the process are stopped too. Processes still running at interpreter exit are stopped by an
    atexit hook.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str | None = None,
        cwd: str | Path | None = REPO_ROOT,
        env: Mapping[str, str] | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        """`env` is merged over the current environment; `log_dir` defaults to a fresh temp dir."""
        self.args = [str(arg) for arg in args]
        self.name = name or Path(self.args[0]).name
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        directory = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="toolmesh-proc-"))
        directory.mkdir(parents=True, exist_ok=True)
        safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)
        self.log_path = directory / f"{safe_name}-{time.monotonic_ns()}.log"
        self._popen: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process (once)."""
        if self._popen is not None:
            raise ProcessError(f"{self.name} was already started")
        with self.log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

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
            raise self._failure(f"did not exit within {timeout:.1f}s") from None

    def stop(self, grace: float = 5.0) -> int | None:
        """Stop the process group: SIGTERM, wait up to `grace` seconds, then SIGKILL. Idempotent."""
        popen = self._popen
        if popen is None:
            return None
        try:
            if popen.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    popen.wait(grace)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    popen.wait(grace)
            # The leader is gone; make sure nothing it started is left behind in its group.
            self._signal_group(signal.SIGKILL)
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self)
        return popen.returncode

    def _signal_group(self, signum: signal.Signals) -> None:
        # start_new_session=True made the process a session and group leader: pgid == pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    # -- readiness ------------------------------------------------------------------------------

    def wait_port(self, port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
        """Wait until `host:port` accepts TCP connections."""

        def ready() -> bool:
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
                return True
            return False

        self._wait(ready, timeout, f"port {host}:{port}")

    def wait_http(self, url: str, timeout: float = 15.0) -> None:
        """Wait until `url` answers an HTTP GET with any status (a 4xx still means the server is up)."""
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"not an http url: {url!r}")
        host, port, path = parts.hostname, parts.port or 80, parts.path or "/"

        def ready() -> bool:
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

        self._wait(ready, timeout, f"HTTP at {url}")

    def wait_log(self, pattern: str | re.Pattern[str], timeout: float = 15.0) -> re.Match[str]:
        """Wait until the log matches `pattern` and return the match."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def ready() -> bool:
            match = regex.search(self.log_text())
            if match is not None:
                found.append(match)
            return match is not None

        self._wait(ready, timeout, f"log line matching {regex.pattern!r}")
        return found[0]

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            if self.popen.poll() is not None:
                raise self._failure(f"exited with status {self.popen.returncode} while waiting for {what}")
            if time.monotonic() >= deadline:
                raise self._failure(f"not ready within {timeout:.1f}s (waiting for {what})")
            time.sleep(_POLL_INTERVAL)

    def _failure(self, what: str) -> ProcessError:
        return ProcessError(
            f"{self.name} (pid {self.pid}) {what}\ncommand: {' '.join(self.args)}\n"
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    async def wait_port_async(self, port: int, host: str = "127.0.0.1", seconds: float = 15.0) -> None:
        """`wait_port` in a worker thread, for async tests."""
        await anyio.to_thread.run_sync(lambda: self.wait_port(port, host, seconds))

    async def wait_http_async(self, url: str, seconds: float = 15.0) -> None:
        """`wait_http` in a worker thread, for async tests."""
        await anyio.to_thread.run_sync(lambda: self.wait_http(url, seconds))

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


@atexit.register
def _stop_all() -> None:
    """Safety net: stop every managed process that is still running at interpreter exit."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for process in live:
        with contextlib.suppress(Exception):
            process.stop(grace=2.0)


# -- the sample backend -------------------------------------------------------------------------


def _sample_args(
    name: str, transport: str, *, page_size: int = 0, era: Era = "both", extra: Sequence[str] = ()
) -> list[str]:
    args = ["-m", "tests.servers.sample", "--name", name, "--transport", transport]
    if page_size:
        args += ["--page-size", str(page_size)]
    if era != "both":
        args += ["--era", era]
    return [*args, *extra]


@contextlib.contextmanager
def sample_server_http(
    name: str,
    *,
    page_size: int = 0,
    stateless: bool = False,
    json_response: bool = False,
    era: Era = "both",
    host: str = "127.0.0.1",
    port: int | None = None,
    log_dir: str | Path | None = None,
    timeout: float = 20.0,
) -> Iterator[tuple[str, ManagedProcess]]:
    """Run ``tests.servers.sample`` over Streamable HTTP; yields ``(url, process)`` once it answers.

    `url` is ``http://HOST:PORT/mcp``. `era` narrows the endpoint to one protocol era.
    """
    port = port or free_port(host)
    extra = ["--host", host, "--port", str(port)]
    if stateless:
        extra.append("--stateless")
    if json_response:
        extra.append("--json-response")
    args = [sys.executable, *_sample_args(name, "http", page_size=page_size, era=era, extra=extra)]
    url = f"http://{host}:{port}/mcp"
    with ManagedProcess(args, name=f"sample-{name}", log_dir=log_dir) as process:
        process.wait_http(url, timeout)
        yield url, process


# `tests/servers/tied_asker.py`: a legacy stdio server with one tool (`ask`) and nothing else.
TIED_ASKER_ENTRY = {
    "command": sys.executable,
    "args": ["-m", "tests.servers.tied_asker"],
    "cwd": str(REPO_ROOT),
}


def sample_server_stdio_entry(
    name: str, *, page_size: int = 0, era: Era = "both", env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An mcpServers-style stdio entry that runs ``tests.servers.sample`` (command, args, cwd[, env])."""
    entry: dict[str, Any] = {
        "command": sys.executable,
        "args": _sample_args(name, "stdio", page_size=page_size, era=era),
        "cwd": str(REPO_ROOT),
    }
    if env:
        entry["env"] = dict(env)
    return entry


def stdio_parameters(entry: Mapping[str, Any]) -> StdioServerParameters:
    """The SDK's `StdioServerParameters` for a stdio catalog entry (for ``mcp.Client(...)``)."""
    return StdioServerParameters(
        command=entry["command"], args=list(entry.get("args", [])), env=entry.get("env"), cwd=entry.get("cwd")
    )


def write_catalog(tmp_path: Path, servers: Mapping[str, Any], filename: str = "catalog.json") -> Path:
    """Write ``{"mcpServers": servers}`` to ``tmp_path/filename`` and return the path."""
    path = Path(tmp_path) / filename
    path.write_text(json.dumps({"mcpServers": dict(servers)}, indent=2) + "\n")
    return path


# -- npm reference servers ------------------------------------------------------------------------


@dataclass(frozen=True)
class NpmServers:
    """Paths of the installed npm reference servers."""

    node: str
    everything: Path
    """``dist/index.js`` of server-everything; first argument: ``stdio``, ``sse`` or ``streamableHttp``."""
    memory: Path
    """``dist/index.js`` of server-memory (stdio only; ``MEMORY_FILE_PATH`` sets its storage file)."""


_NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH")


def _installed_version(cache_dir: Path, package: str) -> str | None:
    try:
        manifest = json.loads((cache_dir / "node_modules" / package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def _bin_script(cache_dir: Path, package: str) -> Path:
    package_dir = cache_dir / "node_modules" / package
    manifest = json.loads((package_dir / "package.json").read_text())
    bins = manifest["bin"]
    relative = bins if isinstance(bins, str) else next(iter(bins.values()))
    return (package_dir / relative).resolve()


def install_npm_servers(cache_dir: Path = NPM_CACHE_DIR) -> NpmServers:
    """Install the pinned npm reference servers into `cache_dir` once (file-locked) and locate them.

    Skips the calling test when node or npm is missing, or when the registry is unreachable and
    nothing is cached yet.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the npm reference servers (not on PATH)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            missing = [
                f"{package}@{version}"
                for package, version in NPM_PACKAGES.items()
                if _installed_version(cache_dir, package) != version
            ]
            if missing:
                command = [
                    npm,
                    "install",
                    "--prefix",
                    str(cache_dir),
                    "--no-audit",
                    "--no-fund",
                    "--save-exact",
                ]
                result = subprocess.run(
                    [*command, *missing], capture_output=True, text=True, timeout=600, check=False
                )
                if result.returncode != 0:
                    output = f"{result.stdout}\n{result.stderr}"
                    message = f"npm install {' '.join(missing)} failed:\n{output[-4000:]}"
                    if any(code in output for code in _NETWORK_ERRORS):
                        pytest.skip(f"npm registry unreachable: {message}")
                    raise ProcessError(message)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return NpmServers(
        node=node,
        everything=_bin_script(cache_dir, EVERYTHING_PACKAGE),
        memory=_bin_script(cache_dir, MEMORY_PACKAGE),
    )


@cache
def npm_servers() -> NpmServers:
    """`install_npm_servers()` once per process."""
    return install_npm_servers()


def everything_stdio_entry() -> dict[str, Any]:
    """An mcpServers-style stdio entry for server-everything."""
    servers = npm_servers()
    return {"command": servers.node, "args": [str(servers.everything), "stdio"]}


@contextlib.contextmanager
def everything_http(
    port: int | None = None, *, log_dir: str | Path | None = None, timeout: float = 30.0
) -> Iterator[str]:
    """Run server-everything in ``streamableHttp`` mode; yields ``http://127.0.0.1:PORT/mcp``.

    The server reads its port from the ``PORT`` environment variable (default 3001) and listens on
    all interfaces; it speaks the handshake era only (stateful sessions, SDK 1.x).
    """
    servers = npm_servers()
    port = port or free_port()
    args = [servers.node, str(servers.everything), "streamableHttp"]
    with ManagedProcess(
        args, name="server-everything-http", env={"PORT": str(port)}, log_dir=log_dir
    ) as process:
        process.wait_port(port, timeout=timeout)
        yield f"http://127.0.0.1:{port}/mcp"


def memory_stdio_entry(memory_file: str | Path | None = None) -> dict[str, Any]:
    """An mcpServers-style stdio entry for server-memory.

    Its knowledge graph is stored in `memory_file` (``MEMORY_FILE_PATH``); by default a fresh file
    in a new temp directory, so tests never share or pollute the package directory.
    """
    servers = npm_servers()
    if memory_file is None:
        memory_file = Path(tempfile.mkdtemp(prefix="toolmesh-memory-")) / "memory.jsonl"
    return {
        "command": servers.node,
        "args": [str(servers.memory)],
        "env": {"MEMORY_FILE_PATH": str(memory_file)},
    }
