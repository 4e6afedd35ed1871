"""Real MCP servers for tests, run by the product's supervisor (`router.up.processes`).

- The sample backend (`tests/servers/sample.py`): `sample_server_http`, `sample_server_stdio_entry`.
- npm reference servers (installed once into ``.cache/npm``): `everything_stdio_entry`,
  `everything_http`, `memory_stdio_entry`.
- `write_catalog` writes an ``{"mcpServers": ...}`` catalog file; `stdio_parameters` turns a stdio
  entry into the SDK's `StdioServerParameters`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest
from mcp.client.stdio import StdioServerParameters

from router.up.processes import ManagedProcess, ProcessError, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_CACHE_DIR = REPO_ROOT / ".cache" / "npm"

EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything"
EVERYTHING_VERSION = "2026.8.31"
MEMORY_PACKAGE = "@modelcontextprotocol/server-memory"
MEMORY_VERSION = "2026.8.31"
NPM_PACKAGES: dict[str, str] = {EVERYTHING_PACKAGE: EVERYTHING_VERSION, MEMORY_PACKAGE: MEMORY_VERSION}

Era = Literal["both", "legacy", "modern"]

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
    extra_args: Sequence[str] = (),
) -> Iterator[tuple[str, ManagedProcess]]:
    """Run ``tests.servers.sample`` over Streamable HTTP; yields ``(url, process)`` once it answers.

    `url` is ``http://HOST:PORT/mcp``. `era` narrows the endpoint to one protocol era.
    """
    port = port or free_port(host)
    extra = ["--host", host, "--port", str(port), *extra_args]
    if stateless:
        extra.append("--stateless")
    if json_response:
        extra.append("--json-response")
    args = [sys.executable, *_sample_args(name, "http", page_size=page_size, era=era, extra=extra)]
    url = f"http://{host}:{port}/mcp"
    with ManagedProcess(args, name=f"sample-{name}", log_dir=log_dir, cwd=REPO_ROOT) as process:
        process.wait_http(url, timeout)
        yield url, process


@contextlib.contextmanager
def sample_server_sse(
    name: str, *, port: int | None = None, log_dir: str | Path | None = None, timeout: float = 20.0
) -> Iterator[tuple[str, ManagedProcess]]:
    """Run ``tests.servers.sample`` over the 2024-11-05 HTTP+SSE transport (the SDK's
    `SseServerTransport`); yields ``(url, process)``, `url` being the event stream
    ``http://127.0.0.1:PORT/sse``, once the port is open."""
    port = port or free_port()
    args = [sys.executable, *_sample_args(name, "sse", extra=["--port", str(port)])]
    with ManagedProcess(args, name=f"sample-sse-{name}", log_dir=log_dir, cwd=REPO_ROOT) as process:
        process.wait_port(port, timeout=timeout)
        yield f"http://127.0.0.1:{port}/sse", process


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


@contextlib.contextmanager
def everything_sse(
    port: int | None = None, *, log_dir: str | Path | None = None, timeout: float = 30.0
) -> Iterator[str]:
    """Run server-everything in ``sse`` mode (the TypeScript SDK's 2024-11-05 HTTP+SSE
    transport); yields its event stream ``http://127.0.0.1:PORT/sse``."""
    servers = npm_servers()
    port = port or free_port()
    args = [servers.node, str(servers.everything), "sse"]
    with ManagedProcess(
        args, name="server-everything-sse", env={"PORT": str(port)}, log_dir=log_dir
    ) as process:
        process.wait_port(port, timeout=timeout)
        yield f"http://127.0.0.1:{port}/sse"


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
