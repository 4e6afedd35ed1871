"""The router's HTTP/1.1 server protocol, byte for byte, under uvicorn with a small ASGI app.

The router's own endpoints exercise it in every other test; here the framings and faults a
general client or a misbehaving one can produce are played on a raw socket: keep-alive and
pipelining, sized and chunked (SSE) responses, HEAD, `Expect: 100-continue`, large bodies with
flow control, a malformed request, an app that fails, an idle connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httptools
import pytest
import uvicorn

from router.server.http11 import DISCONNECT_EXTENSION, HttpProtocol
from router.up.processes import free_port

pytestmark = pytest.mark.anyio


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/echo: the request body back; /stream: three chunks; /fail: raises; /disconnect: waits
    for the client to leave and records it."""
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/fail":
        raise RuntimeError("boom")
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/stream":
        await start(send, b"text/event-stream")
        for n in range(3):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/unsized":  # no Content-Length from the app, the whole body in one message
        await start(send, b"application/json")
        await send({"type": "http.response.body", "body": b'{"ok":true}'})
        return
    if path in ("/hook", "/disconnect"):
        left = asyncio.Event()
        if path == "/hook":  # the toolmesh.disconnect extension instead of a task in receive()
            scope["extensions"][DISCONNECT_EXTENSION](left.set)
        await start(send, b"text/event-stream")
        await send({"type": "http.response.body", "body": b"data: hello\n\n", "more_body": True})
        if path == "/hook":
            await asyncio.wait_for(left.wait(), 5)
            DISCONNECTS.append("hook")
        else:
            DISCONNECTS.append((await receive())["type"])
        return
    reply = scope["method"].encode() + b" " + scope["path"].encode() + b" " + body
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(reply)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


DISCONNECTS: list[str] = []


async def start(send: Any, content_type: bytes) -> None:
    """A response head without a Content-Length (the protocol frames the body)."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=HttpProtocol, lifespan="on", log_config=None,
        timeout_keep_alive=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


class Responses:
    """Parses responses from a raw connection, one after the other."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, dict[bytes, bytes], bytes]] = []
        self._headers: dict[bytes, bytes] = {}
        self._body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = {}, b""


async def exchange(port: int, raw: bytes, responses: int, head: bool = False) -> tuple[list[Any], bytes]:
    """Write `raw`, read until `responses` complete responses came back; also the raw bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parsed, seen = Responses(), b""
    writer.write(raw)
    try:
        while len(parsed.done) < responses:
            data = await asyncio.wait_for(reader.read(65536), 5)
            if not data:
                break
            seen += data
            if head:  # a HEAD response has no body; the parser cannot know that by itself
                parsed.done.append((int(data.split(b" ")[1]), {}, b""))
                continue
            parsed.parser.feed_data(data)
    finally:
        writer.close()
    return parsed.done, seen


async def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async with serving() as port:
        raw = (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
            b"GET /echo%20space HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        done, seen = await exchange(port, raw, 3)
    assert [body for _, _, body in done] == [b"POST /echo one", b"POST /echo two", b"GET /echo space "]
    assert all(status == 200 for status, _, _ in done)
    assert seen.count(b"HTTP/1.1 200 OK\r\n") == 3


async def test_a_stream_is_sent_chunked_as_its_events_come() -> None:
    async with serving() as port:
        done, seen = await exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    status, headers, body = done[0]
    assert status == 200 and headers[b"transfer-encoding"] == b"chunked"
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert b"\r\n\r\n9\r\ndata: 0\n\n\r\n" in seen  # chunk framing right after the head


async def test_a_whole_reply_without_a_length_gets_one_instead_of_chunks() -> None:
    async with serving() as port:
        raw = b"GET /unsized HTTP/1.1\r\nHost: x\r\n\r\n" * 2  # the second one takes the cached head
        done, seen = await exchange(port, raw, 2)
    assert [(status, body) for status, _, body in done] == [(200, b'{"ok":true}')] * 2
    assert all(headers[b"content-length"] == b"11" for _, headers, _ in done)
    assert b"transfer-encoding" not in seen


async def test_head_gets_no_body_and_continue_is_sent_when_asked() -> None:
    async with serving() as port:
        done, seen = await exchange(port, b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n", 1, head=True)
        assert done[0][0] == 200 and seen.endswith(b"\r\n\r\n")
        raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"
        _, seen = await exchange(port, raw, 1)
    assert seen.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert seen.endswith(b"POST /echo hi")


async def test_a_large_body_arrives_whole_through_flow_control() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, far above the read high-water mark
    async with serving() as port:
        raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload
        done, _ = await exchange(port, raw, 1)
    assert done[0][2] == b"POST /echo " + payload


async def test_malformed_requests_and_app_failures_get_an_answer_and_a_closed_connection() -> None:
    async with serving() as port:
        done, seen = await exchange(port, b"NOT HTTP AT ALL\r\n\r\n", 1)
        assert done[0][0] == 400 and b"connection: close" in seen
        done, seen = await exchange(port, b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n", 1)
        assert done[0][0] == 500 and done[0][2] == b"Internal Server Error"
        assert b"connection: close" in seen


async def test_the_app_hears_a_disconnect_and_idle_connections_are_closed() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"data: hello" in await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        for _ in range(100):
            if DISCONNECTS:
                break
            await asyncio.sleep(0.02)
        assert DISCONNECTS == ["http.disconnect"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hook HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"data: hello" in await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        for _ in range(100):
            if len(DISCONNECTS) == 2:
                break
            await asyncio.sleep(0.02)
        assert DISCONNECTS == ["http.disconnect", "hook"]
        # an idle keep-alive connection is closed after timeout_keep_alive (1 s here)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in await asyncio.wait_for(reader.read(4096), 5)
        assert await asyncio.wait_for(reader.read(4096), 5) == b""  # closed by the server
        writer.close()


async def test_a_request_head_is_bounded_a_long_target_is_414_and_a_long_head_431() -> None:
    async with serving() as port:
        target = b"/echo?q=" + b"a" * (17 * 1024)
        done, seen = await exchange(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n", 1)
        assert done[0][0] == 414 and b"16 KiB" in done[0][2] and b"connection: close" in seen
        done, _ = await exchange(port, b"GET /echo?q=" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 1)
        assert done[0][0] == 200, "a long target under the limit is served"
        # headers that keep coming: refused once 64 KiB arrived without the end of the head
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        parsed = Responses()
        for n in range(40):
            writer.write(b"x-filler-%d: %s\r\n" % (n, b"v" * 4000))
            await writer.drain()
            await asyncio.sleep(0.005)
        while not parsed.done:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "closed without an answer"
            parsed.parser.feed_data(data)
        writer.close()
        assert parsed.done[0][0] == 431 and b"64 KiB" in parsed.done[0][2]
        # a large head under the limit is served
        filler = b"".join(b"x-filler-%d: %s\r\n" % (n, b"v" * 4000) for n in range(10))
        done, _ = await exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n", 1)
        assert done[0][0] == 200
