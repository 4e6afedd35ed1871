"""A lean HTTP/1.1 client for one backend origin: keep-alive connections, one request each.

Every `tools/call` through the router is one POST to a backend, so this is the hot path toward
backends. A general client (aiohttp) spends more CPU per request building objects we never use
(cookies, redirects, multipart payloads, tracing hooks) than the backend needs to answer. Here a
request is one `write` of bytes built from a cached prefix, and the response is parsed by
`httptools` (the llhttp parser uvicorn uses) straight from `data_received`.

What it does: POST/GET/DELETE to one URL, fixed headers set once, responses read whole (`read`)
or line by line as they arrive (`lines`, for SSE), chunked or sized bodies, keep-alive with
connections pooled while idle, TLS for `https` URLs. What it does not: redirects, cookies,
compression (no `Accept-Encoding` is sent), proxies, pipelining, HTTP/2.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import anyio
import httptools

HIGH_WATER = 256 * 1024  # unread response bytes before we stop reading from the socket
# A kept-alive connection idle this long is not reused: servers close idle connections (uvicorn
# and Node after 5 s), and a request written while the server's close is on its way is lost
# unanswered, which a call that is not safe to repeat cannot recover from (it may have run).
IDLE_REUSE = 4.0


class ConnectFailed(ConnectionError):
    """No connection could be made: the request never left this process."""


class ConnectionClosed(ConnectionError):
    """The server closed the connection before the response was complete."""


class Response:
    """A response as it arrives: status and headers first, the body as the server sends it."""

    __slots__ = ("_body", "_complete", "_conn", "_waiter", "headers", "status")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = 0
        self.headers: dict[str, str] = {}
        self._body = bytearray()
        self._complete = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def content_type(self) -> str:
        """The media type alone, lower case (`text/event-stream`, `application/json`)."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    async def read(self) -> bytes:
        """The whole body, once the server has sent all of it."""
        while not self._complete:
            await self._wait()
        body = bytes(self._body)
        self._body.clear()
        return body

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line (each ending in b"\\n" but maybe the last), as lines arrive."""
        while True:
            end = self._body.find(b"\n")
            if end >= 0:
                line = bytes(self._body[: end + 1])
                del self._body[: end + 1]
                self._conn.consumed(len(self._body))
                yield line
            elif self._complete:
                if self._body:
                    line = bytes(self._body)
                    self._body.clear()
                    yield line
                return
            else:
                await self._wait()

    async def _wait(self) -> None:
        """Wait for more of the body. Reading paused at the high-water mark resumes here: the
        reader needs more bytes than are buffered (a body `read()` whole, or one SSE line longer
        than the mark), and would otherwise wait for bytes the paused transport never reads."""
        self._conn.check()
        self._conn.consumed(0)
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response currently being read from it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.headers_done: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.keep_alive = True
        self.paused = False
        self.idle_since = 0.0  # monotonic time it went back to the pool
        self._header_name = b""

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(ConnectionClosed(f"malformed HTTP response ({exc})"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        response = self.response
        if response is not None and response.status and exc is None and _ends_at_close(response):
            response._complete = True  # a body without length or chunks ends where the connection does
            response._wake()
            return
        self._broken(ConnectionClosed("the server closed the connection"))

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            key = name.decode("latin-1").lower()
            previous = self.response.headers.get(key)
            text = value.decode("latin-1")
            self.response.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        if self.response is not None:
            self.response.status = self.parser.get_status_code()
        if self.headers_done is not None and not self.headers_done.done():
            self.headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._body += body
            if len(self.response._body) > HIGH_WATER and self.transport is not None and not self.paused:
                self.paused = True
                self.transport.pause_reading()
            self.response._wake()

    def on_message_complete(self) -> None:
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        if self.response is not None:
            self.response._complete = True
            self.response._wake()

    # -- the client's side -----------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return (
            self.keep_alive
            and self.error is None
            and self.transport is not None
            and not self.transport.is_closing()
            and (self.response is None or self.response._complete)
        )

    def start(self, request: bytes) -> Response:
        """Write a whole request; the response fills in as bytes arrive."""
        assert self.transport is not None
        self.response = Response(self)
        self.headers_done = asyncio.get_running_loop().create_future()
        if self.paused:  # the previous response was left paused at the high-water mark
            self.paused = False
            self.transport.resume_reading()
        self.transport.write(request)
        return self.response

    def consumed(self, buffered: int) -> None:
        if self.paused and buffered < HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()

    def _broken(self, exc: BaseException) -> None:
        if self.error is not None:
            return
        if self.response is not None and self.response._complete:
            return
        self.error = exc
        if self.headers_done is not None and not self.headers_done.done():
            self.headers_done.set_exception(exc)
            self.headers_done.exception()  # marks it retrieved when nobody awaits it any more
        if self.response is not None:
            self.response._fail(exc)


class WireClient:
    """Keep-alive HTTP/1.1 connections to one URL with a fixed set of headers."""

    def __init__(
        self, url: str, headers: Mapping[str, str], connect_timeout: float, idle_reuse: float = IDLE_REUSE
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.connect_timeout = connect_timeout
        self.idle_reuse = idle_reuse
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._target = target.encode("latin-1")
        self._host_line = f"Host: {parts.netloc}\r\n".encode("latin-1")
        self._fixed = self._host_line + _header_lines(headers)
        self._static = dict(headers)
        self._static_names = frozenset(name.lower() for name in headers)
        self._idle: list[_Connection] = []
        self._closed = False

    def request(self, method: str, headers: Mapping[str, str], body: bytes | None = None) -> _Request:
        """Send one request: `async with client.request(...) as response`, entered once the
        response's headers are in.

        The connection goes back to the pool if the body was read to its end, and is dropped
        otherwise (a response left half-read cannot carry the next one).
        """
        fixed = self._fixed
        if self._static_names and not self._static_names.isdisjoint(name.lower() for name in headers):
            # A request's own header replaces the fixed one of that name (e.g. the credential
            # chosen for the agent a call is for), never goes beside it.
            wanted = {name.lower() for name in headers}
            kept = {name: value for name, value in self._static.items() if name.lower() not in wanted}
            fixed = self._host_line + _header_lines(kept)
        head = b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), self._target) + fixed
        head += _header_lines(headers)
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        return _Request(self, head + b"\r\n" + (body or b""))

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.abort()

    async def _acquire(self) -> _Connection:
        if self._idle:
            fresh_since = time.monotonic() - self.idle_reuse
            while self._idle:
                conn = self._idle.pop()
                if conn.idle_since > fresh_since and conn.reusable:
                    return conn
                conn.abort()
        if self._closed:
            raise ConnectionClosed("the client is closed")
        loop = asyncio.get_running_loop()
        try:
            with anyio.fail_after(self.connect_timeout):
                _, conn = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"no connection within {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc)) from None
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and not self._closed:
            conn.response = None
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.abort()


class _Request:
    """One request's lifetime on a pooled connection (a class, not a generator: it is on the
    path of every call a backend gets)."""

    __slots__ = ("_client", "_conn", "_data")

    def __init__(self, client: WireClient, data: bytes) -> None:
        self._client, self._data = client, data
        self._conn: _Connection | None = None

    async def __aenter__(self) -> Response:
        conn = self._conn = await self._client._acquire()
        try:
            response = conn.start(self._data)
            assert conn.headers_done is not None
            await conn.headers_done
        except BaseException:
            conn.abort()
            raise
        return response

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        conn = self._conn
        if conn is None:
            return
        if exc is not None:
            conn.abort()
        else:
            self._client._release(conn)


def _ends_at_close(response: Response) -> bool:
    return "content-length" not in response.headers and "chunked" not in response.headers.get(
        "transfer-encoding", ""
    )


def _header_lines(headers: Mapping[str, str]) -> bytes:
    """`Name: value\\r\\n` lines; a CR or LF in a name or value would split the request, so refuse it
    (counted over the whole text: exactly one of each per line means no header holds one)."""
    text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if text.count("\r") != len(headers) or text.count("\n") != len(headers):
        broken = next(name for name, value in headers.items() if {"\r", "\n"} & set(name + value))
        raise ValueError(f"header {broken!r} holds a line break")
    return text.encode("latin-1")
