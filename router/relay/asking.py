"""Server-to-client requests: from a backend to the right client, and the answer back.

A legacy backend asks mid-call (sampling `createMessage`, elicitation, roots `list`); the request
goes to the client on the stream of the call that caused it, under an id the router mints (the
backend's own ids would collide between backends), and the client's reply, which arrives as a
separate POST (at any replica), comes back through `ClientBus.request`/`answer`. A 2026-07-28 backend asks by returning an
input-required result instead; for a legacy client the router runs that loop itself
(`complete_input_required`), asking the client each question the same way.

A client that did not declare the capability a request needs is never sent it: the backend gets
an error on its behalf.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from router.eras import is_modern
from router.errors import INVALID_PARAMS, RPCError
from router.upstream.base import Message, refusal

if TYPE_CHECKING:
    from router.relay.context import CallContext

# server-to-client method -> the client capability it needs
CAPABILITY_FOR = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
MAX_ROUNDS = 16


def capability_problem(ctx: CallContext, method: str) -> str | None:
    """Why `method` may not be sent to this client, or None if it may."""
    if method == "ping":
        return None
    capability = CAPABILITY_FOR.get(method)
    if capability is None:
        return f"{method} is not relayed to clients"
    if capability not in ctx.client_capabilities:
        return f"the client did not declare the {capability!r} capability"
    return None


# What a backend may put in a request's `_meta` to name the call that asks (router.upstream.stdio):
# upstream ids and router-minted tokens that mean nothing to the client.
TIE_KEYS = ("progressToken", "io.modelcontextprotocol/related-request-id")


def untied(params: Any) -> Any:
    """A backend request's params without what tied it to its upstream call."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or not any(key in meta for key in TIE_KEYS):
        return params
    rest = {key: value for key, value in meta.items() if key not in TIE_KEYS}
    return {
        **{key: value for key, value in params.items() if key != "_meta"},
        **({"_meta": rest} if rest else {}),
    }


class Requests(Protocol):
    """What relay needs of the client bus (`state/bus.py` `ClientBus`): a message to a client,
    and a request to it, answered. A protocol here, so relay does not import the layer above."""

    async def deliver(self, session_id: str, message: Message) -> bool: ...

    async def request(
        self,
        session_id: str,
        message: Message,
        timeout: float,
        via: Callable[[Message], Awaitable[None]] | None = None,
    ) -> Message: ...


class Asker:
    """Puts a server-to-client request before a legacy client and waits for its reply."""

    def __init__(self, bus: Requests, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout

    async def ask(self, ctx: CallContext, method: str, params: Any) -> Message:
        """The client's reply as `{"result": ...}` or `{"error": ...}`, for a request a backend sent
        during the client's call (it rides that call's stream); never raises for the client."""
        if method == "ping":
            return {"result": {}}
        problem = capability_problem(ctx, method)
        if problem is None and (is_modern(ctx.era) or ctx.emit is None or ctx.session_id is None):
            problem = "the client has no stream to receive it on"
        if problem is not None:
            return refusal(method, problem)
        assert ctx.session_id is not None
        return await self._request(ctx.session_id, method, params, ctx.emit)

    async def ask_outside(
        self, session_id: str, capabilities: dict[str, Any], method: str, params: Any
    ) -> Message:
        """A request a backend sent on a client's own session outside any call: it goes to that
        client's GET stream, wherever the stream is held."""
        if method == "ping":
            return {"result": {}}
        capability = CAPABILITY_FOR.get(method)
        if capability is None or capability not in capabilities:
            return refusal(method, f"the client did not declare the {capability or method!r} capability")
        return await self._request(session_id, method, params, None)

    async def _request(self, session_id: str, method: str, params: Any, via: Any) -> Message:
        request: Message = {"jsonrpc": "2.0", "id": f"tm-{secrets.token_urlsafe(9)}", "method": method}
        if params is not None:
            request["params"] = params
        try:
            reply = await self.bus.request(session_id, request, self.timeout, via)
        except RPCError as exc:
            return {"error": exc.to_error()}
        return {key: reply[key] for key in ("result", "error") if key in reply}

    async def complete_input_required(
        self, ctx: CallContext, result: dict[str, Any], again: Any
    ) -> dict[str, Any]:
        """Answer a 2026-07-28 backend's input requests by asking the legacy client, and retry.

        `again(input_responses, request_state)` re-sends the original request; its result may ask
        again (multi-round), up to MAX_ROUNDS times.
        """
        for _ in range(MAX_ROUNDS):
            if result.get("resultType") != "input_required":
                return result
            requests = result.get("inputRequests")
            if not isinstance(requests, dict):
                raise RPCError(INVALID_PARAMS, "the server asked for input without inputRequests")
            answers: dict[str, Any] = {}
            for key, request in requests.items():
                if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                    continue
                reply = await self.ask(ctx, request["method"], request.get("params"))
                if "error" in reply:
                    error = reply["error"]
                    raise RPCError(
                        int(error.get("code", -32603)), str(error.get("message", "")), error.get("data")
                    )
                answers[key] = reply["result"]
            result = await again(answers, result.get("requestState"))
        raise RPCError(-32603, f"the server asked for input more than {MAX_ROUNDS} times")
