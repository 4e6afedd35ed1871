"""`subscriptions/listen` (2026-07-28): a POST whose response is a long-lived SSE stream.

The first frame acknowledges the filter the router will honor; after it, every fan-out event the
client opted in to (list_changed per kind, updates of the resource URIs it named) arrives tagged
with `_meta["io.modelcontextprotocol/subscriptionId"]`, the listen request's id. Events come from
`ListenStreams`, to which every replica publishes the backend news it sees. The stream ends when
the client disconnects (2026-07-28 has no resumption: the client listens again and refetches), or
with a final result when the router drops a client that stopped reading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router.guard.agent import Agent
from router.nesting import client_json
from router.server.streams import drain, send_body, serve_sse
from router.state.listeners import Interest, ListenStreams, Message

SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"


def _tagged(message: Message, meta: dict[str, Any]) -> Message:
    params = message.get("params")
    params = params if isinstance(params, dict) else {}
    own = params.get("_meta")
    return {**message, "params": {**params, "_meta": {**(own if isinstance(own, dict) else {}), **meta}}}


def _frame(message: Message) -> bytes:
    data = client_json(message)
    return b"event: message\ndata: " + data + b"\n\n" if data is not None else b""


async def serve_listen(
    bus: ListenStreams,
    receive: Any,
    send: Any,
    message: Message,
    keepalive: float,
    on_change: Callable[[], None] | None,
    agent: Agent,
    namespace: str | None = None,
    tools_mode: str | None = None,
) -> None:
    params = message.get("params") or {}
    interest = Interest.from_filter(params.get("notifications"))
    meta = {SUBSCRIPTION_ID_KEY: message["id"]}
    listener = bus.listen(interest, (agent.id, agent.groups, namespace, tools_mode))
    if interest.uris and on_change is not None:
        on_change()
    ack = {
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": interest.honored(), "_meta": meta},
    }

    async def produce() -> bytes:
        await send_body(send, _frame(ack))
        await drain(send, listener.inbox, lambda event: _frame(_tagged(event, meta)), keepalive)
        # The router ended the stream (a client that stopped reading): a final result says so.
        result = {"jsonrpc": "2.0", "id": message["id"], "result": {"_meta": meta, "resultType": "complete"}}
        return _frame(result)

    async def closed() -> None:
        bus.close(listener)
        if interest.uris and on_change is not None:
            on_change()

    await serve_sse(receive, send, produce, on_end=closed)
