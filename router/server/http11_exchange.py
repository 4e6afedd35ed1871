"""One HTTP/1.1 request and its response on a connection of `server/http11.py`: the ASGI
`receive` (the body, streamed with flow control, `100 Continue` when the app first asks) and
`send` (the head framed with the first body bytes, so a complete response leaves in one write;
Content-Length or chunked), and the cache of response heads the router repeats."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol


class Connection(Protocol):
    """What an exchange uses of its connection (`http11.HttpProtocol`)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    extensions: dict[str, Any]
    write_paused: bool

    async def drain(self) -> None: ...

    def resume_reading(self) -> None: ...

    def response_done(self, exchange: Exchange) -> None: ...


STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}


def status_line(status: int) -> bytes:
    return STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status


class Exchange:
    """One request and its response, with the ASGI `receive` and `send` the app gets."""

    __slots__ = (
        "body", "chunked", "complete", "conn", "continue_wanted", "delivered", "disconnected", "head",
        "keep_alive", "left", "no_body", "on_disconnect", "response_complete", "scope", "sized", "started",
        "waiter",
    )  # fmt: skip

    def __init__(
        self, conn: Connection, scope: dict[str, Any], keep_alive: bool, continue_wanted: bool
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.continue_wanted = continue_wanted
        self.body = bytearray()
        self.complete = False  # the whole request body has arrived
        self.delivered = False  # ... and the app has received all of it
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.started = False
        self.head = b""  # the response head, until it leaves with the first body bytes
        self.no_body = scope["method"] == "HEAD"
        self.chunked = False
        self.sized = False  # the app gave a Content-Length
        self.left = 0  # Content-Length bytes still to send
        self.response_complete = False
        self.on_disconnect: Callable[[], None] | None = None
        scope["extensions"] = conn.extensions  # per connection: no reference cycle per request

    def lost(self) -> None:
        self.disconnected = True
        self.wake()
        callback, self.on_disconnect = self.on_disconnect, None
        if callback is not None and not self.response_complete:
            callback()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- ASGI -----------------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if self.continue_wanted:
            self.continue_wanted = False
            if not self.disconnected:
                self.conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not (self.disconnected or self.response_complete):
            if self.body or (self.complete and not self.delivered):
                body, self.body = bytes(self.body), bytearray()
                self.delivered = self.complete
                self.conn.resume_reading()
                return {"type": "http.request", "body": body, "more_body": not self.complete}
            self.waiter = self.conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn.write_paused and not self.disconnected:
            await conn.drain()
        if self.disconnected:
            return  # as uvicorn does: the app learns of it from receive()
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            self.started = True
            self.head = self._head(message["status"], message.get("headers") or ())
            return
        if kind != "http.response.body" or not self.started or self.response_complete:
            raise RuntimeError(f"ASGI message {kind!r} out of order")
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if self.head:  # the first body bytes: now the framing is known
            out = self._frame_first(body, more)
            self.head = b""
        else:
            out = self._frame(body, more)
        if out:
            conn.transport.write(out)
        if not more:
            if self.left > 0:
                raise RuntimeError("response body shorter than its Content-Length")
            self.response_complete = True
            self.wake()
            conn.response_done(self)

    def _head(self, status: int, headers: Any) -> bytes:
        """Status line and the app's headers; the framing header is added with the first body."""
        if not self.complete:  # answered before its body was read: the connection will close
            self.keep_alive = False
        key = (status, tuple(headers), self.keep_alive)
        cached = _HEADS.get(key)
        if cached is not None:
            head, self.keep_alive, no_body = cached
            self.no_body = self.no_body or no_body
            self.left, self.sized = -1, False
            return head
        parts = [status_line(status)]
        left = -1
        for name, value in headers:
            if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
                raise RuntimeError(f"header {name!r} holds a line break")
            lower = name.lower()
            if lower == b"content-length":
                left = int(value)
            elif lower == b"connection" and b"close" in value.lower():
                self.keep_alive = False
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        if status < 200 or status in (204, 304):
            self.no_body = True
        head = b"".join(parts)
        if left < 0 and len(_HEADS) < 256:  # sized heads differ in length; the rest repeat
            _HEADS[key] = (head, self.keep_alive, status < 200 or status in (204, 304))
        self.left, self.sized = left, left >= 0
        return head

    def _frame_first(self, body: bytes, more: bool) -> bytes:
        """The head with its framing, and the first body bytes: a response whose whole body
        comes in one message gets a Content-Length, a stream is chunked."""
        if self.no_body:
            self.left = 0
            return self.head + b"\r\n"
        if self.sized:
            return self.head + b"\r\n" + self._frame(body, more)
        if not more:
            self.left = 0
            return self.head + b"content-length: %d\r\n\r\n" % len(body) + body
        self.chunked = True
        return self.head + b"transfer-encoding: chunked\r\n\r\n" + self._frame(body, more)

    def _frame(self, body: bytes, more: bool) -> bytes:
        if self.no_body:
            return b""
        if self.chunked:
            framed = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            return framed if more else framed + b"0\r\n\r\n"
        if len(body) > self.left:
            raise RuntimeError("response body longer than its Content-Length")
        self.left -= len(body)
        return body


# Response heads without a Content-Length, by (status, headers, keep-alive): JSON and SSE replies
# repeat the same few.
_HEADS: dict[tuple[int, tuple[tuple[bytes, bytes], ...], bool], tuple[bytes, bool, bool]] = {}
