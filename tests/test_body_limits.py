"""A request body over the router's limit gets the 413 the router wrote, seen from a real socket.

A client that writes its whole body before reading (most do) used to see a connection reset
instead: the router answered 413 and closed while the body was still arriving, and the reset
made the client's kernel drop the unread 413. Now the router answers, shuts its side and drops
what the client still sends until it stops (a lingering close). A client that asked
`Expect: 100-continue` gets the 413 before sending the body, and never a 100 for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.conftest import RouterHandle, run_router
from tests.support.procs import sample_server_stdio_entry

pytestmark = pytest.mark.anyio

LIMIT = 512 * 1024
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterHandle]:
    tmp = tmp_path_factory.mktemp("limits")
    servers = {"alpha": sample_server_stdio_entry("alpha")}
    with run_router(tmp, servers, "--max-body-bytes", str(LIMIT)) as handle:
        yield handle


def _port(router: RouterHandle) -> int:
    return int(router.base_url.rsplit(":", 1)[1])


def _head(path: str, length: int, *extra: bytes) -> bytes:
    lines = [
        b"POST %s HTTP/1.1" % path.encode(),
        b"Host: 127.0.0.1",
        b"Content-Type: application/json",
        b"Accept: application/json, text/event-stream",
        b"Content-Length: %d" % length,
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    seen = b""
    while data := await asyncio.wait_for(reader.read(65536), 15):
        seen += data
    return seen


async def _naive_post(port: int, path: str, size: int) -> bytes:
    """Write the head and the whole body, only then read: the way that used to get a reset."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * size + b'"}}'
        writer.write(_head(path, len(body)) + body)
        await asyncio.wait_for(writer.drain(), 15)
        return await _read_all(reader)
    finally:
        writer.close()


@pytest.mark.parametrize("path", ["/mcp", "/v1/tools/alpha__echo/call"])
async def test_every_oversized_body_gets_its_413_not_a_reset(router: RouterHandle, path: str) -> None:
    port = _port(router)
    outcomes: list[str] = []
    for size in [1, 2, 3, 4, 6, 8, 10, 12] * 2:
        try:
            seen = await _naive_post(port, path, size * MIB)
        except (ConnectionResetError, BrokenPipeError) as exc:
            outcomes.append(f"{size} MiB: {type(exc).__name__}")
            continue
        status = seen.split(b"\r\n", 1)[0]
        outcomes.append(f"{size} MiB: {status.decode(errors='replace')}")
        assert b"connection: close" in seen.lower()
    assert all(outcome.endswith("413 Request Entity Too Large") for outcome in outcomes), outcomes


async def test_expect_continue_is_refused_before_the_body_and_never_continued(router: RouterHandle) -> None:
    port = _port(router)
    for path in ("/mcp", "/v1/tools/alpha__echo/call"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_head(path, 8 * MIB, b"Expect: 100-continue"))
            seen = await _read_all(reader)  # the router closes: no body was sent, none is awaited
        finally:
            writer.close()
        assert seen.startswith(b"HTTP/1.1 413 "), seen[:80]
        assert b"100 Continue" not in seen
    # a body within the limit still gets its 100 and then its answer
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
        writer.write(_head("/mcp", len(body), b"Expect: 100-continue"))
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), 15)
        assert answer.startswith(b"HTTP/1.1 400 ") or answer.startswith(b"HTTP/1.1 200 "), answer
    finally:
        writer.close()


async def test_an_unknown_expectation_gets_417(router: RouterHandle) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(router))
    try:
        writer.write(_head("/mcp", 2, b"Expect: something-else") + b"{}")
        seen = await _read_all(reader)
    finally:
        writer.close()
    assert seen.startswith(b"HTTP/1.1 417 Expectation Failed\r\n"), seen[:80]
