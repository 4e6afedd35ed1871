"""The router's HTTP/1.1 server protocol: httptools parsing, ASGI to the app, little else.

uvicorn's own protocol serves any ASGI app with every option uvicorn has; per request it builds
a full scope, a cycle object, an `asyncio.Event`, arms and cancels a keep-alive timer, validates
every header with a regex and writes the head and body in separate syscalls. Measured on the
reference machine that is about three times the CPU of a bare httptools protocol, for a `tools/
call` whose whole budget is a few hundred microseconds. This protocol keeps what the router
needs and drops the rest:

- the app still sees ASGI (`http` scope, `receive`, `send`: one `http11_exchange.Exchange` per
  request), so every endpoint works unchanged
  and uvicorn still runs the process (lifespan, signals, sockets, graceful shutdown);
- a response's head leaves with its first body bytes, a complete response in one write;
- idle keep-alive connections are closed by one sweep per second, not a timer per request; the
  same sweep ends a request that arrives too slowly (a head not complete within `read_timeout`
  of its first byte, or a body that pauses longer than that): 408, or a close once the app has
  its request. Without it a client could hold a connection forever by sending a header byte
  now and then (slowloris); whole heads, the usual case, pay nothing for it;
- the request body streams to `receive()` with flow control; pipelined requests wait their turn;
- a connection accepted past `max_connections` (uvicorn's `limit_concurrency`) has its request
  answered 503 and is closed, or is closed after OVER_LIMIT_WAIT if it sends none: decided once,
  when it is accepted, and counted apart from the admitted ones, so the connections within the
  limit keep being served while a flood of new ones is turned away;
- no WebSocket upgrades, no access log (the router logs and audits requests itself);
- X-Forwarded-For/-Proto from a trusted proxy are applied here, with the rule and settings of
  uvicorn's ProxyHeadersMiddleware (`forwarded_allow_ips`), which the protocol takes off the app:
  the middleware reads every header of every request in Python, while here whether the peer is
  a trusted proxy is decided once per connection and only a request carrying the headers pays.

A response sent before its request's body was read (413 for a body over the limit, and any
refusal that needs no body) is followed by a lingering close, as nginx does: the response leaves
with `connection: close`, the write side is shut, and what the client still sends is read and
dropped until it closes, for at most LINGER_SECONDS (LINGER_IDLE without a byte) and LINGER_BYTES.
Closing at once would reset the connection while the client still writes, and a reset makes the
client's kernel drop the response it has not read yet. `Expect: 100-continue` gets its 100 only
when the app asks for the body (the router refuses a too-large declared Content-Length without
asking: a 413, never a 100 first); any other expectation gets 417 (RFC 9110, 10.1.1).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.server import ServerState

from router.server.http11_exchange import Exchange, status_line

log = logging.getLogger("toolmesh.server")

# ASGI scope extension: register a callback for the client leaving (see Exchange.notify_disconnect).
DISCONNECT_EXTENSION = "toolmesh.disconnect"
HIGH_WATER = 64 * 1024  # request body bytes buffered before we stop reading the socket
SWEEP_EVERY = 1.0  # seconds between sweeps for idle keep-alive connections
LINGER_SECONDS = 10.0  # a lingering close lasts at most this long ...
LINGER_IDLE = 2.0  # ... or this long without a byte from the client ...
LINGER_BYTES = 64 * 1024 * 1024  # ... or until this many bytes were dropped
# A request head is held in memory until it is complete, so it is bounded: a request target
# past MAX_URL is 414, a head (request line and headers) past MAX_HEAD is 431. Envoy's default
# header limit is 60 KiB and nginx's 32 KiB: nothing a proxy passes is refused here.
MAX_URL = 16 * 1024
MAX_HEAD = 64 * 1024
OVER_LIMIT_WAIT = 1.0  # seconds a connection past max_connections may take to send its request
OVER_LIMIT = (
    b"Service Unavailable: this replica holds max_connections connections already; "
    b"retry later or on another replica"
)
UPGRADE_WITH_BODY = b"Bad Request: a request with Upgrade cannot carry a body; send it without Upgrade"


def _forwarded(scope: dict[str, Any], headers: list[tuple[bytes, bytes]], proxies: Any) -> None:
    """A trusted proxy's X-Forwarded-Proto and X-Forwarded-For, as uvicorn's middleware reads them:
    the scheme if it is one HTTP knows, and the client the proxies' chain names (the last host in
    it that is not itself a trusted proxy)."""
    proto: bytes | None = None
    chain: list[bytes] = []
    for name, value in headers:
        if name == b"x-forwarded-proto":
            proto = value
        elif name == b"x-forwarded-for":
            chain.append(value)
    if proto is not None:
        scheme = proto.decode("latin-1").strip()
        if scheme in ("http", "https"):
            scope["scheme"] = scheme
    if chain:
        host, port = proxies.get_trusted_client_address(b", ".join(chain).decode("latin-1"))
        if host:  # an empty header names nobody: the peer stays the client
            scope["client"] = (host, port)


class HttpProtocol(asyncio.Protocol):
    """One client connection. uvicorn creates it (`Config(http=HttpProtocol)`) and shuts it down."""

    READ_TIMEOUT = 15.0  # the `read_timeout` setting; `configured` makes a class with another
    # called once per connection accepted past max_connections (the router counts them in a metric)
    ON_OVER_LIMIT: Callable[[], None] | None = None

    @classmethod
    def configured(
        cls, read_timeout: float, on_over_limit: Callable[[], None] | None = None
    ) -> type[HttpProtocol]:
        """This protocol with another `read_timeout`, and a callback for each connection turned
        away past `max_connections` (uvicorn takes a class, not an instance)."""
        callback = None if on_over_limit is None else staticmethod(on_over_limit)  # not bound to self
        return type(cls.__name__, (cls,), {"READ_TIMEOUT": read_timeout, "ON_OVER_LIMIT": callback})

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        app = config.loaded_app
        # uvicorn's proxy-headers middleware is applied by the protocol itself (module docstring).
        self.proxies: Any = None  # the trusted proxies (uvicorn's host set), when proxy headers apply
        if isinstance(app, ProxyHeadersMiddleware):
            self.proxies, app = app.trusted_hosts, app.app
        self.app = app
        self.from_proxy = False  # the peer is a trusted proxy: its X-Forwarded-* headers count
        self.loop = _loop or asyncio.get_event_loop()
        self.keep_alive_timeout: float = config.timeout_keep_alive
        self.read_timeout = self.READ_TIMEOUT
        self.max_connections: int | None = config.limit_concurrency  # the `max_connections` setting
        self.over_limit = False  # accepted past max_connections: its requests get 503
        self.admitted = False  # counted among the max_connections (until connection_lost)
        self.root_path = config.root_path  # app_state (lifespan state) is not used by the router
        self.server_state = server_state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.write_paused = False
        self.read_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.closing = False
        self.idle_since: float | None = None
        self.lingering = False  # closing: the response is out, what the client sends is dropped
        self._linger_left = 0
        self._linger_last = 0.0
        self._linger_until = 0.0
        self._linger_timer: asyncio.TimerHandle | None = None
        # The request being parsed, the one being answered, and any that wait behind it.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = False  # between the first byte of a request and the end of its headers
        self._head_bytes = 0  # bytes received while the head was incomplete (an upper bound)
        # What the sweep saw of a request arriving slowly: which request (`_begun`) or how many
        # reads (`_reads`) it saw last, and since when nothing changed (see _IdleSweeper).
        self._begun = 0
        self._reads = 0
        self._slow_mark = -1
        self._slow_since = 0.0
        self._parsing: Exchange | None = None
        self._active: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self.extensions = {DISCONNECT_EXTENSION: self.notify_disconnect}

    def notify_disconnect(self, callback: Callable[[], None] | None) -> None:
        """The `toolmesh.disconnect` extension, for the request being answered: `callback` runs
        if the client leaves before the response is complete (None unregisters it). Cheaper than
        a task waiting in `receive()` for `http.disconnect`, which apps do under other servers."""
        if self._active is not None:
            self._active.on_disconnect = callback

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        if self.max_connections is not None:
            # decided once: the connections within the limit keep working; one past it has its
            # request answered 503, and is closed after OVER_LIMIT_WAIT if it sends none
            admitted = _admitted.get(self.server_state, 0)
            if admitted < self.max_connections:
                _admitted[self.server_state] = admitted + 1
                self.admitted = True
            else:
                self.over_limit = True
                self.keep_alive_timeout = self.read_timeout = OVER_LIMIT_WAIT
                if self.ON_OVER_LIMIT is not None:
                    self.ON_OVER_LIMIT()
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        if self.proxies is not None:
            self.from_proxy = (self.client[0] if self.client else None) in self.proxies
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        _idle.watch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        if self.admitted:
            self.admitted = False
            _admitted[self.server_state] -= 1
        self.closing = True
        self.extensions.clear()  # the one reference cycle a connection has (self -> dict -> method)
        _idle.forget(self)
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        for exchange in (self._active, self._parsing, *self._queue):
            if exchange is not None:
                exchange.lost()
        self._queue.clear()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def eof_received(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._linger_left -= len(data)
            self._linger_last = self.loop.time()
            if self._linger_left <= 0:
                self.transport.close()
            return
        self.idle_since = None
        self._reads += 1
        try:
            self.parser.feed_data(data)
            if self._in_head:  # only while a head arrives in pieces: a whole one costs nothing
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD and not self.closing:
                    self._reject(431, b"Request Header Fields Too Large: the request head is over 64 KiB")
        except httptools.HttpParserUpgrade:
            self._ignore_upgrade()
        except httptools.HttpParserError as exc:
            log.debug("malformed HTTP request", extra={"reason": str(exc)})
            if not self.closing:
                reason = b"Bad Request: malformed HTTP/1.1 (%s)" % str(exc).encode()[:200]
                self._reject(400, reason, take=self._parsing)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self.loop.create_future()
        await self._drain

    def resume_reading(self) -> None:
        if self.read_paused and not self.closing:
            self.read_paused = False
            self.transport.resume_reading()

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._in_head = True
        self._head_bytes = 0
        self._begun += 1

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL and not self.closing:
            self._reject(414, b"URI Too Long: the request target is over 16 KiB")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self.closing:  # a request behind a refused one, in the same read: not answered
            return
        path, _, query = self._url.partition(b"?")
        method = self.parser.get_method().decode("ascii")
        headers = self._headers
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": self.parser.get_http_version(),
            "method": method,
            "scheme": self.scheme,
            "path": _decode_path(path),
            "raw_path": path,
            "query_string": query,
            "root_path": self.root_path,
            "headers": headers,
            "server": self.server,
            "client": self.client,
        }
        named = dict(headers)
        if len(named) != len(headers) or b"host" not in named:  # rare: only then is it looked into
            problem = _head_problem(headers, named, scope["http_version"])
            if problem is not None:
                self._reject(400, problem)
                return
        if self.from_proxy and (b"x-forwarded-for" in named or b"x-forwarded-proto" in named):
            _forwarded(scope, headers, self.proxies)
        if self.over_limit:
            self._reject(503, OVER_LIMIT, extra=b"retry-after: 1\r\n", head_only=method == "HEAD")
            return
        expect = named.get(b"expect")
        if expect is not None and expect.lower() != b"100-continue":
            self._reject(417, b"Expectation Failed: only 100-continue is supported")
            return
        continue_wanted = expect is not None
        exchange = Exchange(self, scope, self.parser.should_keep_alive(), continue_wanted)
        self._parsing = exchange
        if self._active is None:
            self._start(exchange)
        else:  # pipelined: answered after the one in progress; stop reading meanwhile
            self._queue.append(exchange)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is None or exchange.response_complete:
            return
        exchange.body += body
        if len(exchange.body) > HIGH_WATER:
            self._pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self._parsing
        if exchange is None:
            return
        exchange.complete = True
        self._parsing = None
        exchange.wake()

    # -- requests ---------------------------------------------------------------------------------

    def _start(self, exchange: Exchange) -> None:
        self._active = exchange
        task = self.loop.create_task(self._run(exchange))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(self, exchange: Exchange) -> None:
        try:
            await self.app(exchange.scope, exchange.receive, exchange.send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("unhandled error in the ASGI app", exc_info=exc)
            if not exchange.started and not exchange.disconnected:
                exchange.keep_alive = False
                await self._internal_error(exchange)
            else:
                self.transport.close()
        else:
            if not exchange.response_complete and not exchange.disconnected:
                log.error("the ASGI app returned without completing its response")
                self.transport.close()

    async def _internal_error(self, exchange: Exchange) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]
        await exchange.send({"type": "http.response.start", "status": 500, "headers": headers})
        await exchange.send({"type": "http.response.body", "body": b"Internal Server Error"})

    def response_done(self, exchange: Exchange) -> None:
        """A response is complete: close, or go on with the next request on this connection."""
        if exchange is not self._active:
            return
        self._active = None
        self.server_state.total_requests += 1
        if not exchange.complete:
            # a body left unread cannot be skipped reliably: close rather than misparse the next,
            # but let the client finish writing first, or it may never read the response
            self._linger()
            return
        if not exchange.keep_alive:
            self.closing = True
            self.transport.close()
            return
        if self._queue:
            self._start(self._queue.popleft())
            if not self._queue:
                self.resume_reading()
        else:
            self.idle_since = time.monotonic()

    def shutdown(self) -> None:
        """uvicorn is stopping: close now if idle, else after the response in progress."""
        if self._active is None:
            self.closing = True
            self.transport.close()
        else:
            self._active.keep_alive = False

    def check_arrival(self, now: float) -> None:
        """The sweep's look at a request still arriving: a head must be complete within
        `read_timeout` of the sweep first seeing it, and a body may not pause longer than that
        (unless the router paused reading it). Granularity: the sweep's second."""
        if self._in_head:
            mark = self._begun  # the same head as last time: its age counts
        elif self._parsing is not None and not self.read_paused:
            mark = -2 - self._reads  # no new bytes since last time: the pause counts
        else:
            self._slow_mark = -1
            return
        if mark != self._slow_mark:
            self._slow_mark, self._slow_since = mark, now
        elif now - self._slow_since > self.read_timeout:
            log.info("closing a connection whose request arrives too slowly", extra={"client": self.client})
            what = b"head" if self._in_head else b"body"
            self._reject(
                408, b"Request Timeout: the request %s did not arrive in time" % what, take=self._parsing
            )

    def _pause_reading(self) -> None:
        if not self.read_paused and not self.closing:
            self.read_paused = True
            self.transport.pause_reading()

    def _ignore_upgrade(self) -> None:
        """`Upgrade: h2c` or `websocket`: the parser stops after that request's head, which is
        then answered as plain HTTP/1.1 (a server may ignore Upgrade, RFC 9110 7.8) and the
        connection closed after it, since what the client sends next may be the other protocol.
        The parser ends the request at an upgrade's head, so a request with a body is refused."""
        exchange = self._queue[-1] if self._queue else self._active
        if exchange is None or self.closing:  # nothing to answer (a refused request): just close
            self.closing = True
            self.transport.close()
            return
        exchange.keep_alive = False
        named = dict(exchange.scope["headers"])
        if named.get(b"content-length", b"0").strip() not in (b"0", b"") or b"transfer-encoding" in named:
            if exchange is self._active:
                self._reject(400, UPGRADE_WITH_BODY, take=exchange)
            else:
                self.closing = True
                self.transport.close()

    def _reject(
        self,
        status: int,
        reason: bytes,
        take: Exchange | None = None,
        extra: bytes = b"",
        head_only: bool = False,
    ) -> None:
        """Answer `status` with `reason` as a plain-text body, and close (lingering). `take`: the
        refused request is the one the app is answering already; it is taken from the app first
        (the app hears the client left), unless its response has begun. While the app answers
        another request (pipelined before the refused one), all that is left is to close.
        `extra`: more header lines; `head_only`: the refused request is a HEAD (no body sent)."""
        active = self._active
        if active is not None:
            if take is not active or active.started:
                self.closing = True
                self.transport.close()
                return
            active.lost()
            self._active = None
        head = status_line(status) + b"content-type: text/plain\r\ncontent-length: %d\r\n" % len(reason)
        self.transport.write(head + extra + b"connection: close\r\n\r\n" + (b"" if head_only else reason))
        self._linger()

    def _linger(self) -> None:
        """Close once the client has stopped sending (nginx's lingering close): shut the write
        side after the response, then read and drop until the client closes, the time or byte
        bound is reached, or LINGER_IDLE passes without a byte."""
        self.closing = True
        if self.lingering:
            return
        self.lingering = True
        _idle.forget(self)
        transport = self.transport
        if transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        now = self.loop.time()
        self._linger_left = LINGER_BYTES
        self._linger_last = now
        self._linger_until = now + LINGER_SECONDS
        self._linger_timer = self.loop.call_later(LINGER_IDLE, self._linger_check)
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()

    def _linger_check(self) -> None:
        self._linger_timer = None
        now = self.loop.time()
        due = min(self._linger_until, self._linger_last + LINGER_IDLE)
        if now >= due:
            self.transport.close()
        else:
            self._linger_timer = self.loop.call_later(due - now, self._linger_check)


class _IdleSweeper:
    """Closes keep-alive connections idle for longer than their timeout, and requests that arrive
    too slowly (`HttpProtocol.check_arrival`), once a second."""

    def __init__(self) -> None:
        self._conns: set[HttpProtocol] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, conn: HttpProtocol) -> None:
        conn.idle_since = time.monotonic()
        if conn.loop is not self._loop:  # first use, or a new event loop
            self._loop, self._timer = conn.loop, None
            self._conns = set()
        self._conns.add(conn)
        if self._timer is None:
            self._timer = conn.loop.call_later(SWEEP_EVERY, self._sweep)

    def forget(self, conn: HttpProtocol) -> None:
        self._conns.discard(conn)

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        for conn in list(self._conns):
            idle_since = conn.idle_since
            if idle_since is not None:
                if now - idle_since > conn.keep_alive_timeout:
                    conn.closing = True
                    conn.transport.close()
                    self._conns.discard(conn)
            elif not conn.closing:
                conn.check_arrival(now)
        loop = self._loop
        if self._conns and loop is not None and not loop.is_closed():
            self._timer = loop.call_later(SWEEP_EVERY, self._sweep)


_idle = _IdleSweeper()


# Headers a request may carry once: two Hosts (or Origins, credentials, session ids) would let
# whatever reads the first and whatever reads the last (a proxy, this router) disagree.
SINGLE_HEADERS = (b"host", b"origin", b"authorization", b"mcp-session-id")


# Connections admitted within max_connections, per server (uvicorn's ServerState): a count, not
# the server's set of connections, which also holds the ones turned away until they close.
_admitted: weakref.WeakKeyDictionary[ServerState, int] = weakref.WeakKeyDictionary()


def _head_problem(
    headers: list[tuple[bytes, bytes]], named: dict[bytes, bytes], version: str
) -> bytes | None:
    """Why a request head with a repeated header or no Host is refused (None: it is not)."""
    if b"host" not in named and version == "1.1":
        return b"Bad Request: an HTTP/1.1 request needs a Host header (RFC 9112 3.2)"
    for name in SINGLE_HEADERS:
        if sum(1 for key, _ in headers if key == name) > 1:
            return b"Bad Request: the %s header appears more than once" % name.title()
    return None


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None


def _decode_path(raw: bytes) -> str:
    """ASGI's `path`: percent-decoded, as UTF-8."""
    text = raw.decode("latin-1")
    return unquote(text) if "%" in text else text
