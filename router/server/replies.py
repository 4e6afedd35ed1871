"""Reading requests and writing replies over ASGI: the plumbing both HTTP endpoints share.

JSON-RPC replies are built as bytes around a result that may already be serialized (lists come
from the index as JSON), so a reply is one `orjson.dumps` at most, and goes out as one body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import orjson

from router.errors import INVALID_REQUEST, RPCError
from router.nesting import Unencodable, to_json

if TYPE_CHECKING:
    from router.relay.context import Result

Scope = dict[str, Any]
Receive = Any
Send = Any

JSON_HEADERS = [(b"content-type", b"application/json")]


def decoded_headers(scope: Scope) -> dict[str, str]:
    """An ASGI scope's headers as a dict of text (names are lower case already)."""
    return {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}


def response_bytes(request_id: Any, result: Result, modern: bool = False, encoded: bytes = b"") -> bytes:
    """`encoded`: the dict `result` as `orjson.dumps` wrote it already (the output limit measured
    it), sent as it is rather than encoded again."""
    if isinstance(result, dict):
        if not encoded:
            if modern and "resultType" not in result:
                result = {**result, "resultType": "complete"}
            try:
                payload = to_json(result, "the result")
            except Unencodable as exc:
                return error_bytes(request_id, exc)
        elif modern and "resultType" not in result:  # the same bytes as the dict with it added last
            if not result:
                payload = b'{"resultType":"complete"}'
            else:  # one copy of a large result, not three
                head = b'{"jsonrpc":"2.0","id":' + orjson.dumps(request_id) + b',"result":'
                return b"".join((head, memoryview(encoded)[:-1], b',"resultType":"complete"}}'))
        else:
            head = b'{"jsonrpc":"2.0","id":' + orjson.dumps(request_id) + b',"result":'
            return b"".join((head, encoded, b"}"))
    else:
        payload = result[:-1] + b',"resultType":"complete"}' if modern else result
    return b'{"jsonrpc":"2.0","id":' + orjson.dumps(request_id) + b',"result":' + payload + b"}"


def error_bytes(request_id: Any, error: RPCError) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": error.to_error()})


async def read_body(receive: Receive, limit: int, declared: str | None = None) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes. `declared` is the
    request's Content-Length: a body declared too large is refused before any of it is asked
    for, so a client that sent `Expect: 100-continue` never gets a 100 for it."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not event.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def send_reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_plain(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_reply(send, status, body, [(b"content-type", b"text/plain; charset=utf-8"), *(extra or [])])


async def send_error(
    send: Send,
    request_id: Any,
    error: RPCError,
    status: int,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send_reply(send, status, error_bytes(request_id, error), [*JSON_HEADERS, *(extra or [])])


async def send_json(
    send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A plain JSON document (health, admin, errors outside MCP)."""
    await send_reply(send, status, orjson.dumps(payload), [*JSON_HEADERS, *(extra or [])])


async def send_problem(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """An error outside MCP, in the one shape every plain-HTTP surface answers with:
    `{"error": {"message": ...}}` (the MCP endpoint's HTTP errors are JSON-RPC errors, whose
    `error.message` is in the same place)."""
    await send_json(send, status, {"error": {"message": message}}, extra)


async def send_refusal(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """The MCP endpoint refusing a request before it is read as JSON-RPC (a wrong method, media
    type or credential): a JSON-RPC error with a null id, as the SDKs' own servers answer."""
    await send_error(send, None, RPCError(INVALID_REQUEST, message), status, extra)
