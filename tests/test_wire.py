"""The lean upstream HTTP client against raw TCP servers that answer exactly as each test needs.

Real MCP servers (uvicorn) always send Content-Length or chunked bodies and keep connections
alive; the framings and faults other servers produce are played here byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from router.up.processes import free_port
from router.upstream.wire import ConnectFailed, ConnectionClosed, WireClient, _header_lines

pytestmark = pytest.mark.anyio

Answer = Callable[[bytes], bytes | None]  # request bytes -> what to write back (None: close)


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[tuple[str, list[int]]]:
    """A server that reads one request at a time and writes `answer(request)`; yields its URL and
    the number of connections it has accepted so far (one list item per connection)."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                reply = answer(head + body)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp", connections
    finally:
        server.close()


def json_reply(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


async def test_sends_one_request_with_fixed_and_per_request_headers_and_reuses_the_connection() -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return json_reply(b'{"ok":true}')

    async with raw_server(answer) as (url, connections):
        client = WireClient(url, {"Authorization": "Bearer t"}, connect_timeout=5)
        for number in range(3):
            async with client.request("POST", {"Mcp-Session-Id": f"s{number}"}, b'{"n":1}') as response:
                assert response.status == 200
                assert response.content_type == "application/json"
                assert await response.read() == b'{"ok":true}'
        await client.close()
    assert len(connections) == 1, "keep-alive: three requests, one connection"
    head = seen[2].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /mcp HTTP/1.1\r\n")
    assert "Authorization: Bearer t" in head and "Mcp-Session-Id: s2" in head and "Content-Length: 7" in head
    assert seen[2].endswith(b'{"n":1}')


async def test_reads_chunked_bodies_line_by_line() -> None:
    stream = b'event: message\ndata: {"a":1}\n\ndata: {"b":2}\n\n'
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (stream[:10], stream[10:30], stream[30:])
    )
    reply = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    async with raw_server(lambda _: reply) as (url, _):
        client = WireClient(url, {}, connect_timeout=5)
        async with client.request("GET", {}) as response:
            assert response.content_type == "text/event-stream"
            lines = [line async for line in response.lines()]
        await client.close()
    assert b"".join(lines) == stream
    assert lines[1] == b'data: {"a":1}\n'


async def test_a_body_without_length_ends_when_the_server_closes() -> None:
    reply = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"late":true}'
    async with raw_server(lambda _: reply) as (url, connections):
        client = WireClient(url, {}, connect_timeout=5)
        for _ in range(2):
            async with client.request("POST", {}, b"{}") as response:
                assert await response.read() == b'{"late":true}'
        await client.close()
    assert len(connections) == 2, "a closed connection is never reused"


async def test_a_connection_closed_mid_body_is_an_error_not_a_short_body() -> None:
    reply = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{"cut'
    async with raw_server(lambda _: reply) as (url, _):
        client = WireClient(url, {}, connect_timeout=5)
        with pytest.raises(ConnectionClosed, match="closed the connection"):
            async with client.request("POST", {}, b"{}") as response:
                await response.read()
        await client.close()


async def test_a_malformed_response_is_reported() -> None:
    async with raw_server(lambda _: b"SMTP ready\r\n\r\n") as (url, _):
        client = WireClient(url, {}, connect_timeout=5)
        with pytest.raises(ConnectionClosed, match="malformed HTTP response"):
            async with client.request("POST", {}, b"{}"):
                pass
        await client.close()


async def test_nothing_listening_is_a_connect_failure() -> None:
    client = WireClient(f"http://127.0.0.1:{free_port()}/mcp", {}, connect_timeout=5)
    with pytest.raises(ConnectFailed):
        async with client.request("POST", {}, b"{}"):
            pass


async def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="line break"):
        WireClient("http://127.0.0.1:1/mcp", {"X-Evil": "a\r\nHost: other"}, connect_timeout=5)
    client = WireClient("http://127.0.0.1:1/mcp", {}, connect_timeout=5)
    with pytest.raises(ValueError, match="line break"):
        async with client.request("POST", {"Mcp-Name": "x\ny"}, b"{}"):
            pass


def test_header_lines_refuse_a_line_break_in_any_name_or_value() -> None:
    """A CR or LF inside a header would let a value smuggle another header or a second request."""
    assert _header_lines({"a": "1", "B-C": "x y"}) == b"a: 1\r\nB-C: x y\r\n"
    assert _header_lines({}) == b""
    for headers, broken in (
        ({"ok": "1", "evil": "x\r\nInjected: 1"}, "evil"),
        ({"evil\n": "x", "ok": "1"}, "evil\n"),
        ({"ok": "1", "cr": "x\ry"}, "cr"),
    ):
        with pytest.raises(ValueError, match="holds a line break") as caught:
            _header_lines(headers)
        assert repr(broken) in str(caught.value)


async def test_a_connection_idle_past_idle_reuse_is_replaced_not_reused() -> None:
    """A server may be closing a connection that sat idle (uvicorn does after 5 s); a request
    written on it then is lost, so a connection idle longer than `idle_reuse` is not reused."""
    async with raw_server(lambda request: json_reply(b'{"ok":true}')) as (url, connections):
        client = WireClient(url, {}, connect_timeout=5, idle_reuse=0.3)
        for pause in (0.0, 0.0, 0.5, 0.0):
            await asyncio.sleep(pause)
            async with client.request("POST", {}, b"{}") as response:
                assert await response.read() == b'{"ok":true}'
        assert len(connections) == 2  # the third request came after 0.5 s idle: a new connection
        await client.close()
