"""How many examples the property-based tests (tests/test_fuzz_*.py) try, and with which seed; the
misbehaving backend they share; and what a router holds before and after a fuzz module.

In the suite: a fixed, small number, derandomized, so CI is cheap and repeatable. `bench/fuzz.py`
runs the same properties as a longer campaign: `TOOLMESH_FUZZ_EXAMPLES` examples per property,
and with `TOOLMESH_FUZZ_SEED` a seed of its own (printed, so a failure can be replayed).

`Footprint` is what a router process holds that fuzz requests may leave behind: legacy sessions
(its `toolmesh_sessions` gauge), open client connections (its sockets on its own port, read from
/proc: a stream the router never closed keeps one) and its resident memory. Each HTTP fuzz module
takes one after its warm-up and, at its end, `settle` waits until sessions and connections are
back to it (sessions opened by fuzz requests expire: the modules run the router with a short
idle timeout, `IDLE_TIMEOUT`) or fails. With `TOOLMESH_FUZZ_MEMORY` (a file, set by
`bench/fuzz.py`) both footprints are written there as one JSON line per module.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from hypothesis import HealthCheck, settings

from router.up.processes import ManagedProcess, free_port
from tests.support.procs import REPO_ROOT

# Seconds before an idle session ends in the fuzz modules' routers (swept every half of it).
IDLE_TIMEOUT = 4.0
IDLE_ENV = {"TOOLMESH_SESSION_IDLE_TIMEOUT": str(IDLE_TIMEOUT)}
_SESSIONS = re.compile(rb"^toolmesh_sessions ([0-9.e+]+)$", re.M)


def fuzz_settings(examples: int) -> settings:
    seed = os.environ.get("TOOLMESH_FUZZ_SEED")
    return settings(
        max_examples=int(os.environ.get("TOOLMESH_FUZZ_EXAMPLES") or examples),
        deadline=None,
        derandomize=seed is None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def json_rpc_messages(headers: dict[str, str], data: bytes) -> list[Any]:
    """The JSON-RPC messages of a reply: its JSON body, or the data of each SSE event."""
    kind = headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        # SSE lines end at CR, LF or CRLF only (str.splitlines would also split at U+0085 and
        # U+2028, which JSON carries unescaped)
        lines = re.split(r"\r\n|\r|\n", data.decode())
        events = [line[5:].strip() for line in lines if line.startswith("data:")]
        return [json.loads(event) for event in events if event]
    if kind.startswith("application/json") and data:
        return [json.loads(data)]
    return []


def check_answer(
    status: int, headers: dict[str, str], data: bytes, took: float, within: float, jsonrpc: bool = True
) -> list[Any]:
    """The properties every answer has (`/v1/tools` answers plain JSON, not JSON-RPC): never a 500
    or a traceback, within `within` seconds; a refusal says why. Returns the JSON-RPC messages."""
    assert status != 500 and status < 600, (status, data[:300])
    assert b"Traceback" not in data, data[:300]
    assert took < within, f"answered after {took:.1f} s"
    if not jsonrpc:
        if headers.get("content-type", "").startswith("application/json"):
            document = json.loads(data)
            assert status < 400 or isinstance(document.get("error", {}).get("message"), str), document
        return []
    messages = json_rpc_messages(headers, data)
    for message in messages:
        assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", message
        if "error" in message:
            assert isinstance(message["error"]["code"], int) and isinstance(message["error"]["message"], str)
    if status >= 400 and messages:  # a refused JSON-RPC request says why in an error
        assert all("error" in message for message in messages), messages
    return messages


def send_raw(
    port: int, method: str, target: bytes, headers: dict[str, str], body: bytes, timeout: float
) -> tuple[int, dict[str, str], bytes, float]:
    """One request with the request target exactly as given (any bytes: the client library
    refuses what is not ASCII); (status, headers with lower-case names, body, seconds taken)."""
    started = time.monotonic()
    with raw_response(port, method, target, headers, body, timeout) as response:
        data = response.read()
        got = {name.lower(): value for name, value in response.getheaders()}
        return response.status, got, data, time.monotonic() - started


@contextlib.contextmanager
def raw_response(
    port: int, method: str, target: bytes, headers: dict[str, str], body: bytes, timeout: float
) -> Iterator[http.client.HTTPResponse]:
    """`send_raw`'s request; the response once its head is in, its body left to the caller (an
    event stream's, for one). The connection is closed on leaving."""
    head = [f"{method} ".encode() + target + b" HTTP/1.1", f"host: 127.0.0.1:{port}".encode()]
    head += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    head += [f"content-length: {len(body)}".encode(), b"connection: close", b"", b""]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"\r\n".join(head) + body)
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            yield response
        finally:
            response.close()


@contextlib.contextmanager
def running_junk(log_dir: Path) -> Iterator[str]:
    """`tests/servers/junk.py` in its own process; yields its MCP URL."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.servers.junk", "--port", str(port)]
    with ManagedProcess(argv, name="junk", log_dir=log_dir, cwd=REPO_ROOT) as process:
        process.wait_port(port)
        yield f"http://127.0.0.1:{port}/mcp"


class Router(Protocol):
    """A router process under test (the suite's `RouterHandle`)."""

    @property
    def base_url(self) -> str: ...
    @property
    def process(self) -> ManagedProcess: ...


@dataclass(frozen=True)
class Footprint:
    sessions: int  # legacy sessions the router holds
    connections: int  # client connections open on the router's port, by the router's own sockets
    rss_kib: int  # the router process's resident memory


def port_of(router: Router) -> int:
    return int(router.base_url.rsplit(":", 1)[1])


def assert_no_traceback(router: Router) -> None:
    """A fuzz module's end: whatever it sent, the router's log holds no traceback."""
    log = router.process.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]


def footprint(router: Router) -> Footprint:
    pid, port = router.process.pid, port_of(router)
    connections = _connections(pid, port)  # first: the /metrics request below is not counted
    with urllib.request.urlopen(f"{router.base_url}/metrics", timeout=10) as response:
        found = _SESSIONS.search(response.read())
    assert found is not None, "no toolmesh_sessions in /metrics"
    return Footprint(int(float(found.group(1))), connections, rss_kib(pid))


def baseline(router: Router) -> Footprint:
    """The footprint once the warm-up's own connections are closed (the router sees the client's
    close a moment after the client made it)."""
    deadline = time.monotonic() + 5
    now = footprint(router)
    while now.connections and time.monotonic() < deadline:
        time.sleep(0.05)
        now = footprint(router)
    return now


def settle(router: Router, baseline: Footprint, module: str, within: float) -> Footprint:
    """Wait until the router holds as many sessions and connections as at `baseline`; fail after
    `within` seconds. Returns the footprint then (recorded for `bench/fuzz.py`)."""
    started = time.monotonic()
    while True:
        now = footprint(router)
        settled = (now.sessions, now.connections) == (baseline.sessions, baseline.connections)
        if settled or time.monotonic() - started > within:
            break
        time.sleep(0.2)
    took = time.monotonic() - started
    report = os.environ.get("TOOLMESH_FUZZ_MEMORY")
    if report:
        line = {
            "module": module,
            "before": asdict(baseline),
            "after": asdict(now),
            "settled_in": round(took, 1),
        }
        with open(report, "a") as out:
            out.write(json.dumps(line) + "\n")
    assert settled, f"{module}: not back to {baseline} after {within} s: {now}"
    return now


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _connections(pid: int, port: int) -> int:
    """The process's TCP sockets on local port `port` other than the listening one."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if inode in inodes and int(local.rsplit(":", 1)[1], 16) == port and state != "0A":
                    count += 1
    return count
