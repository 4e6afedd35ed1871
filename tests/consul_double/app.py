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
from typing import Any, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .decode import DecodeError, decode_service_definition
from .durations import DurationError, parse_go_duration
from .state import (
    CRITICAL,
    PASSING,
    ConsulError,
    ConsulState,
    DoubleConfig,
    validate_kv_key,
)
from .views import (
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
        return app

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
            if remaining <= 0 or self._closing:
                break
            await self.feed.wait(remaining)
            index, result = query()
        return index, result

    # ------------------------------------------------------------------ routes

    def _routes(self) -> list[Route]:
        return [
            Route("/v1/agent/service/register", self.register_service, methods=["PUT"]),
            Route("/v1/agent/service/deregister/{service_id:path}", self.deregister_service, methods=["PUT"]),
            Route("/v1/agent/check/pass/{check_id:path}", self.check_pass, methods=["PUT"]),
            Route("/v1/agent/check/fail/{check_id:path}", self.check_fail, methods=["PUT"]),
            Route("/v1/health/service/{name:path}", self.health_service, methods=["GET"]),
            Route("/v1/kv/{key:path}", self.kv, methods=["GET", "PUT", "DELETE"]),
            Route("/v1/status/leader", self.status_leader, methods=["GET"]),
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

    def _ttl_update(self, request: Request, status: str, output: str) -> Response:
        self.state.update_ttl_check(request.path_params["check_id"], status, output)
        return Response(b"", status_code=200)

    async def check_pass(self, request: Request) -> Response:
        """PUT /v1/agent/check/pass/:check_id?note=."""
        return self._ttl_update(request, PASSING, request.query_params.get("note", ""))

    async def check_fail(self, request: Request) -> Response:
        """PUT /v1/agent/check/fail/:check_id?note=."""
        return self._ttl_update(request, CRITICAL, request.query_params.get("note", ""))

    # ---- health

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
        self._unsupported(request, "keys", "recurse", "raw")
        if not key:
            raise ConsulError(400, "Missing key name")
        index, entry = await self._blocking(request, lambda: self.state.kv_get(key))
        if entry is None:
            return self._json(request, None, index, status=404)
        return self._json(request, [kv_json(entry)], index)

    @staticmethod
    def _unsupported(request: Request, *names: str) -> None:
        for name in names:
            if name in request.query_params:
                raise ConsulError(400, f"the toolmesh Consul double does not support ?{name}")

    async def _kv_put(self, request: Request, key: str) -> Response:
        if not key:
            raise ConsulError(400, "Missing key name")
        self._unsupported(request, "cas", "flags", "acquire", "release")
        limit = self.config.kv_max_value_size
        declared = int(request.headers.get("content-length") or 0)
        value = await request.body()
        if max(declared, len(value)) > limit:
            size = max(declared, len(value))
            raise ConsulError(413, f"Request body({size} bytes) too large, max size: {limit} bytes.")
        return self._json(request, self.state.kv_put(key, value))

    def _kv_delete(self, request: Request, key: str) -> Response:
        self._unsupported(request, "cas", "recurse")
        if not key:
            raise ConsulError(400, "Missing key name")
        return self._json(request, self.state.kv_delete(key))

    # ---- status

    async def status_leader(self, request: Request) -> Response:
        """GET /v1/status/leader: the raft leader's address as a JSON string."""
        return self._json(request, f"{self.config.node_address}:8300")


def create_app(config: DoubleConfig | None = None) -> ASGIApp:
    """Build the ASGI app of a fresh double (what ``python -m tests.consul_double`` serves)."""
    return ConsulDouble(config).asgi()
