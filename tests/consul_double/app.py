"""HTTP layer of the Consul double: routes, blocking queries, timers, and the fault hook.

The state model (``state.py``) is synchronous and knows nothing about HTTP; this module
parses Consul's query parameters, runs blocking queries against the model's change
notifications, drives TTL expiry and the reaper from the event loop, and renders answers
with Consul's status codes, plain-text error bodies and ``X-Consul-*`` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .decode import DecodeError, decode_service_definition
from .durations import DurationError, parse_go_duration
from .state import (
    CRITICAL,
    PASSING,
    WARNING,
    ConsulError,
    ConsulState,
    DoubleConfig,
    validate_kv_key,
)
from .views import (
    agent_self_json,
    agent_service_json,
    catalog_service_json,
    check_json,
    health_entry_json,
    kv_json,
)

T = TypeVar("T")
_log = logging.getLogger("tests.consul_double")

DEFAULT_QUERY_TIME = 300.0  # Consul: a blocking query without ?wait waits 5 minutes ...
MAX_QUERY_TIME = 600.0  # ... and never more than 10.
JITTER_FRACTION = 16  # Consul adds up to wait/16 so that many watchers do not wake together.
_UNSUPPORTED_READ_PARAMS = ("filter", "node-meta", "peer", "sameness-group")
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_UINT = re.compile(r"^[0-9]+$")
FaultMode = Literal["open", "error", "hang"]


class ChangeFeed:
    """Broadcast wake-up: every ``wait`` pending at a ``notify`` returns."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        """Wake all current waiters; later waiters wait for the next notify."""
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout: float) -> bool:
        """Wait for the next notify; False if ``timeout`` seconds passed first."""
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await event.wait()
        except TimeoutError:
            return False
        return True


class FaultGate:
    """Test-only switch that makes the API unreachable-looking: ``error`` answers 503 to
    everything, ``hang`` holds requests and responses until resumed."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.mode: FaultMode = "open"
        self._feed = feed
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._timer: asyncio.TimerHandle | None = None

    def pause(self, mode: FaultMode, seconds: float | None) -> None:
        """Start failing; resume by itself after ``seconds`` when given."""
        self.mode = mode
        self._resumed.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None:
            self._timer = asyncio.get_running_loop().call_later(seconds, self.resume)
        self._feed.notify()  # cut in-flight blocking queries short

    def resume(self) -> None:
        """Answer normally again; held requests proceed."""
        self.mode = "open"
        self._resumed.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._feed.notify()

    async def wait_unless_hung(self) -> None:
        """Block while in ``hang`` mode."""
        while self.mode == "hang":
            await self._resumed.wait()


_UNAVAILABLE = b"Service Unavailable: the toolmesh Consul double is paused (/_double/pause)"


class FaultMiddleware:
    """Applies the FaultGate to every API path (``/_double/*`` stays reachable)."""

    def __init__(self, app: ASGIApp, gate: FaultGate) -> None:
        self.app = app
        self.gate = gate

    async def _unavailable(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": _UNAVAILABLE})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_double/"):
            await self.app(scope, receive, send)
            return
        await self.gate.wait_unless_hung()
        if self.gate.mode == "error":
            await self._unavailable(send)
            return
        swallowed = False

        async def guarded_send(message: Message) -> None:
            nonlocal swallowed
            if swallowed:
                return
            if message["type"] == "http.response.start":
                await self.gate.wait_unless_hung()
                if self.gate.mode == "error":
                    swallowed = True
                    await self._unavailable(send)
                    return
            await send(message)

        await self.app(scope, receive, guarded_send)


@dataclass(frozen=True, slots=True)
class BlockingOptions:
    """Parsed ``?index`` and ``?wait`` (with Consul's default, cap and jitter applied)."""

    min_index: int
    timeout: float


def _parse_uint(text: str) -> int:
    """Go's strconv.ParseUint, with Go's error text (Consul turns it into a 500)."""
    if not _UINT.match(text):
        raise ConsulError(500, f'strconv.ParseUint: parsing "{text}": invalid syntax')
    return int(text)


def _parse_go_bool(value: str, message: str) -> bool:
    """Consul's getBoolQueryParam: a bare ``?passing`` means true."""
    if value == "" or value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise ConsulError(400, message)


class ConsulDouble:
    """The double: a ConsulState plus the asyncio machinery and routes around it."""

    def __init__(self, config: DoubleConfig | None = None) -> None:
        self.state = ConsulState(config)
        self.config = self.state.config
        self.feed = ChangeFeed()
        self._timer_feed = ChangeFeed()
        self.state.on_change(self.feed.notify)
        self.state.on_timers_changed(self._timer_feed.notify)
        self.gate: FaultGate | None = None
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    # --------------------------------------------------------------- lifecycle

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Run TTL expiry and the reaper for as long as the server runs."""
        self._loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self._timer_loop()), asyncio.create_task(self._reaper_loop())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def request_shutdown(self) -> None:
        """Answer in-flight blocking queries now so the server can stop promptly.

        Safe to call from a signal handler: the work is handed to the event loop.
        """
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._begin_shutdown)

    def _begin_shutdown(self) -> None:
        self._closing = True
        self.feed.notify()

    async def _timer_loop(self) -> None:
        """Expire TTLs on time: sleep until the next deadline or until deadlines move."""
        while True:
            delay: float | None = 1.0
            try:
                delay = self.state.run_timers()
            except Exception:  # a bug here must not silently stop every TTL in the double
                _log.exception("consul double: TTL timer pass failed")
            await self._timer_feed.wait(1.0 if delay is None else min(delay + 0.001, 1.0))

    async def _reaper_loop(self) -> None:
        """Consul's reaper: one pass every reap_interval."""
        while True:
            await asyncio.sleep(self.config.reap_interval)
            try:
                self.state.reap()
            except Exception:
                _log.exception("consul double: reaper pass failed")

    def asgi(self) -> ASGIApp:
        """The ASGI application (Starlette routes wrapped in the fault middleware)."""
        app = Starlette(
            routes=self._routes(),
            lifespan=self.lifespan,
            exception_handlers={ConsulError: self._consul_error, HTTPException: self._http_error},
        )
        self.gate = FaultGate(self.feed)
        return FaultMiddleware(app, self.gate)

    # ----------------------------------------------------------------- helpers

    @staticmethod
    async def _consul_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsulError)
        return PlainTextResponse(exc.message, status_code=exc.status)

    @staticmethod
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return PlainTextResponse(f"method {request.method} not allowed", status_code=405)
        if exc.status_code == 404:
            return PlainTextResponse(
                f"404 page not found (the toolmesh Consul double does not implement {request.url.path})",
                status_code=404,
            )
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    def _check_read_params(self, request: Request) -> None:
        query = request.query_params
        dc = query.get("dc")
        if dc and dc != self.config.datacenter:
            raise ConsulError(500, "No path to datacenter")
        for name in _UNSUPPORTED_READ_PARAMS:
            if name in query:
                raise ConsulError(400, f"the toolmesh Consul double does not support ?{name}")

    def _json(self, request: Request, data: Any, index: int | None = None, status: int = 200) -> Response:
        """A JSON answer with Consul's query-meta headers when ``index`` is given."""
        headers: dict[str, str] = {}
        if index is not None:
            query = request.query_params
            consistency = "stale" if "stale" in query else "consistent" if "consistent" in query else "leader"
            headers = {
                "X-Consul-Index": str(index),
                "X-Consul-KnownLeader": "true",
                "X-Consul-LastContact": "0",
                "X-Consul-Effective-Consistency": consistency,
            }
        body = b"" if data is None else orjson.dumps(data)
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    def _blocking_options(self, request: Request) -> BlockingOptions:
        """Consul's parseWait, default query time, 10-minute cap and wait/16 jitter."""
        query = request.query_params
        wait = 0.0
        if query.get("wait"):
            try:
                wait = parse_go_duration(query["wait"])
            except DurationError as exc:
                raise ConsulError(400, "Invalid wait time") from exc
        min_index = 0
        if query.get("index"):
            if not _UINT.match(query["index"]):
                raise ConsulError(400, "Invalid index")
            min_index = int(query["index"])
        timeout = DEFAULT_QUERY_TIME if wait <= 0 else min(wait, MAX_QUERY_TIME)
        timeout += self._rng.random() * timeout / JITTER_FRACTION
        return BlockingOptions(min_index=min_index, timeout=timeout)

    async def _blocking(self, request: Request, query: Callable[[], tuple[int, T]]) -> tuple[int, T]:
        """Run ``query``; with ``?index=N`` re-run it on every write until its index
        exceeds N or the wait elapses (then answer with the unchanged result)."""
        options = self._blocking_options(request)
        index, result = query()
        if options.min_index == 0:
            return index, result
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.timeout
        while index <= options.min_index:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing or (self.gate is not None and self.gate.mode == "error"):
                break
            await self.feed.wait(remaining)
            index, result = query()
        return index, result

    # ------------------------------------------------------------------ routes

    def _routes(self) -> list[Route]:
        return [
            Route("/v1/agent/service/register", self.register_service, methods=["PUT"]),
            Route("/v1/agent/service/deregister/{service_id:path}", self.deregister_service, methods=["PUT"]),
            Route("/v1/agent/service/{service_id:path}", self.agent_service, methods=["GET"]),
            Route("/v1/agent/services", self.agent_services, methods=["GET"]),
            Route("/v1/agent/checks", self.agent_checks, methods=["GET"]),
            Route("/v1/agent/check/pass/{check_id:path}", self.check_pass, methods=["PUT"]),
            Route("/v1/agent/check/warn/{check_id:path}", self.check_warn, methods=["PUT"]),
            Route("/v1/agent/check/fail/{check_id:path}", self.check_fail, methods=["PUT"]),
            Route("/v1/agent/check/update/{check_id:path}", self.check_update, methods=["PUT"]),
            Route("/v1/agent/self", self.agent_self, methods=["GET"]),
            Route("/v1/health/service/{name:path}", self.health_service, methods=["GET"]),
            Route("/v1/catalog/services", self.catalog_services, methods=["GET"]),
            Route("/v1/catalog/service/{name:path}", self.catalog_service, methods=["GET"]),
            Route("/v1/kv/{key:path}", self.kv, methods=["GET", "PUT", "DELETE"]),
            Route("/v1/status/leader", self.status_leader, methods=["GET"]),
            Route("/v1/status/peers", self.status_peers, methods=["GET"]),
            Route("/_double/pause", self.double_pause, methods=["POST"]),
            Route("/_double/resume", self.double_resume, methods=["POST"]),
            Route("/_double/reap", self.double_reap, methods=["POST"]),
            Route("/_double/state", self.double_state, methods=["GET"]),
        ]

    # ---- agent

    async def register_service(self, request: Request) -> Response:
        """PUT /v1/agent/service/register."""
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from exc
        if body is None:
            raise ConsulError(400, "Request decode failed: EOF")
        try:
            definition = decode_service_definition(body)
        except DecodeError as exc:
            raise ConsulError(400, str(exc)) from exc
        query = request.query_params
        replace = "replace-existing-checks" in query and query["replace-existing-checks"] in ("", "true")
        self.state.register_service(definition, replace_existing_checks=replace)
        return Response(b"", status_code=200)

    async def deregister_service(self, request: Request) -> Response:
        """PUT /v1/agent/service/deregister/:service_id."""
        self.state.deregister_service(request.path_params["service_id"])
        return Response(b"", status_code=200)

    async def agent_services(self, request: Request) -> Response:
        """GET /v1/agent/services: ID -> service (no X-Consul-Index, as in Consul)."""
        self._check_read_params(request)
        data = {s.id: agent_service_json(self.state, s) for s in self.state.agent_services()}
        return self._json(request, data)

    async def agent_service(self, request: Request) -> Response:
        """GET /v1/agent/service/:service_id."""
        service_id = request.path_params["service_id"]
        service = self.state.agent_service(service_id)
        if service is None:
            raise ConsulError(404, f"unknown service ID: {service_id}")
        return self._json(request, agent_service_json(self.state, service))

    async def agent_checks(self, request: Request) -> Response:
        """GET /v1/agent/checks: CheckID -> check, agent view."""
        self._check_read_params(request)
        data = {c.check_id: check_json(self.state, c, agent_view=True) for c in self.state.agent_checks()}
        return self._json(request, data)

    def _ttl_update(self, request: Request, status: str, output: str) -> Response:
        self.state.update_ttl_check(request.path_params["check_id"], status, output)
        return Response(b"", status_code=200)

    async def check_pass(self, request: Request) -> Response:
        """PUT /v1/agent/check/pass/:check_id?note=."""
        return self._ttl_update(request, PASSING, request.query_params.get("note", ""))

    async def check_warn(self, request: Request) -> Response:
        """PUT /v1/agent/check/warn/:check_id?note=."""
        return self._ttl_update(request, WARNING, request.query_params.get("note", ""))

    async def check_fail(self, request: Request) -> Response:
        """PUT /v1/agent/check/fail/:check_id?note=."""
        return self._ttl_update(request, CRITICAL, request.query_params.get("note", ""))

    async def check_update(self, request: Request) -> Response:
        """PUT /v1/agent/check/update/:check_id with {"Status", "Output"}."""
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from exc
        if not isinstance(body, dict):
            raise ConsulError(400, "Request decode failed: expected a JSON object")
        fields = {k.lower(): v for k, v in body.items()}
        status, output = fields.get("status", ""), fields.get("output", "")
        if not isinstance(status, str) or not isinstance(output, str):
            raise ConsulError(400, "Request decode failed: Status and Output must be strings")
        if status not in (PASSING, WARNING, CRITICAL):
            raise ConsulError(400, f"Invalid check status: '{status}'")
        return self._ttl_update(request, status, output)

    async def agent_self(self, request: Request) -> Response:
        """GET /v1/agent/self (minimal)."""
        return self._json(request, agent_self_json(self.state))

    # ---- health and catalog

    async def health_service(self, request: Request) -> Response:
        """GET /v1/health/service/:name with ?passing, ?tag and blocking ?index/?wait."""
        self._check_read_params(request)
        name = request.path_params["name"]
        if not name:
            raise ConsulError(400, "Missing service name")
        tags = request.query_params.getlist("tag")
        passing = False
        if "passing" in request.query_params:
            passing = _parse_go_bool(request.query_params["passing"], "Invalid value for ?passing")
        index, rows = await self._blocking(request, lambda: self.state.health_service(name, tags))
        if passing:  # applied after the query, so it never changes the index
            rows = [r for r in rows if all(c.synced_status == PASSING for c in r.checks)]
        return self._json(request, [health_entry_json(self.state, r) for r in rows], index)

    async def catalog_services(self, request: Request) -> Response:
        """GET /v1/catalog/services (blocking)."""
        self._check_read_params(request)
        index, listing = await self._blocking(request, self.state.catalog_services)
        return self._json(request, listing, index)

    async def catalog_service(self, request: Request) -> Response:
        """GET /v1/catalog/service/:name with ?tag (blocking)."""
        self._check_read_params(request)
        name = request.path_params["name"]
        if not name:
            raise ConsulError(400, "Missing service name")
        tags = request.query_params.getlist("tag")
        index, rows = await self._blocking(request, lambda: self.state.catalog_service(name, tags))
        return self._json(request, [catalog_service_json(self.state, s) for s in rows], index)

    # ---- KV

    def _kv_key(self, request: Request) -> str:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        lowered = raw_path.lower()
        if self.config.strict_kv_keys and (b"../" in raw_path or b"..\\" in raw_path):
            raise ConsulError(400, "URL path contains invalid traversal sequence")
        if self.config.strict_kv_keys and any(p in lowered for p in (b"%2e%2e%2f", b"%2e%2e/", b"..%2f")):
            raise ConsulError(400, "URL path contains encoded traversal sequence")
        key: str = request.path_params["key"]
        if key:
            validate_kv_key(key, self.config.strict_kv_keys)
        return key

    async def kv(self, request: Request) -> Response:
        """GET/PUT/DELETE /v1/kv/:key."""
        key = self._kv_key(request)
        if request.method == "GET":
            return await self._kv_get(request, key)
        if request.method == "PUT":
            return await self._kv_put(request, key)
        return self._kv_delete(request, key)

    async def _kv_get(self, request: Request, key: str) -> Response:
        self._check_read_params(request)
        query = request.query_params
        if "keys" in query:
            separator = query.get("separator", query.get("seperator", ""))
            index, keys = await self._blocking(request, lambda: self.state.kv_keys(key, separator))
            if not keys and key:
                return self._json(request, None, index, status=404)
            return self._json(request, keys, index)
        if "recurse" in query:
            index, entries = await self._blocking(request, lambda: self.state.kv_list(key))
            if not entries:
                return self._json(request, None, index, status=404)
            return self._json(request, [kv_json(e) for e in entries], index)
        if not key:
            raise ConsulError(400, "Missing key name")
        index, entry = await self._blocking(request, lambda: self.state.kv_get(key))
        if entry is None:
            return self._json(request, None, index, status=404)
        if "raw" in query:
            return Response(
                entry.value or b"",
                status_code=200,
                headers={
                    "Content-Type": "text/plain",
                    "X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "sandbox",
                    "X-Consul-Index": str(index),
                    "X-Consul-KnownLeader": "true",
                    "X-Consul-LastContact": "0",
                },
            )
        return self._json(request, [kv_json(entry)], index)

    @staticmethod
    def _conflicting(request: Request, *flags: str) -> None:
        present = [f for f in flags if f in request.query_params]
        if len(present) > 1:
            raise ConsulError(400, f"Conflicting flags: {request.url.query}\n")

    async def _kv_put(self, request: Request, key: str) -> Response:
        if not key:
            raise ConsulError(400, "Missing key name")
        self._conflicting(request, "cas", "acquire", "release")
        query = request.query_params
        if "acquire" in query or "release" in query:
            raise ConsulError(400, "the toolmesh Consul double does not support sessions (?acquire/?release)")
        flags = _parse_uint(query["flags"]) if "flags" in query else 0
        cas = _parse_uint(query["cas"]) if "cas" in query else None
        limit = self.config.kv_max_value_size
        declared = int(request.headers.get("content-length") or 0)
        value = await request.body()
        if max(declared, len(value)) > limit:
            size = max(declared, len(value))
            raise ConsulError(413, f"Request body({size} bytes) too large, max size: {limit} bytes.")
        return self._json(request, self.state.kv_put(key, value, flags, cas))

    def _kv_delete(self, request: Request, key: str) -> Response:
        self._conflicting(request, "recurse", "cas")
        query = request.query_params
        recurse = "recurse" in query
        if not recurse and not key:
            raise ConsulError(400, "Missing key name")
        cas = _parse_uint(query["cas"]) if "cas" in query else None
        return self._json(request, self.state.kv_delete(key, recurse, cas))

    # ---- status

    async def status_leader(self, request: Request) -> Response:
        """GET /v1/status/leader: the raft leader's address as a JSON string."""
        return self._json(request, f"{self.config.node_address}:8300")

    async def status_peers(self, request: Request) -> Response:
        """GET /v1/status/peers."""
        return self._json(request, [f"{self.config.node_address}:8300"])

    # ---- test-only hooks

    async def double_pause(self, request: Request) -> Response:
        """POST /_double/pause?mode=error|hang&seconds=S: make the API look unreachable."""
        mode = request.query_params.get("mode", "error")
        if mode not in ("error", "hang"):
            raise ConsulError(400, "mode must be 'error' or 'hang'")
        seconds: float | None = None
        if request.query_params.get("seconds"):
            try:
                seconds = float(request.query_params["seconds"])
            except ValueError as exc:
                raise ConsulError(400, "seconds must be a number") from exc
        assert self.gate is not None
        self.gate.pause("error" if mode == "error" else "hang", seconds)
        return self._json(request, {"paused": True, "mode": mode, "seconds": seconds})

    async def double_resume(self, request: Request) -> Response:
        """POST /_double/resume."""
        assert self.gate is not None
        self.gate.resume()
        return self._json(request, {"paused": False})

    async def double_reap(self, request: Request) -> Response:
        """POST /_double/reap: run one reaper pass now instead of waiting for the interval."""
        return self._json(request, {"reaped": self.state.reap()})

    async def double_state(self, request: Request) -> Response:
        """GET /_double/state: raft index and fault mode, for debugging tests."""
        mode = self.gate.mode if self.gate is not None else "open"
        return self._json(request, {"raft_index": self.state.raft_index, "mode": mode})


def create_app(config: DoubleConfig | None = None) -> ASGIApp:
    """Build the ASGI app of a fresh double (what ``python -m tests.consul_double`` serves)."""
    return ConsulDouble(config).asgi()
