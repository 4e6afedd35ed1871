"""The era bridge: a 2026-07-28 client in front of a legacy backend.

A legacy backend asks its questions (sampling, elicitation, roots) in the middle of a call, on a
session; a 2026-07-28 client has no session and expects an `input_required` result it answers by
retrying with `inputResponses` and `requestState`. So the bridge parks the upstream call (see
`parking.py`), turns the questions it asks into an input-required result, and on the retry hands
the answers to the call still waiting upstream. A retry that lands on another replica is carried
to the one holding the call by `forward_parked` (router/cluster/parked.py) when replicas share state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from router.errors import INVALID_PARAMS, RPCError
from router.relay.asking import capability_problem, untied
from router.relay.call_relay import CallRelay
from router.relay.context import CallContext
from router.relay.parking import ParkedCall, ParkedElsewhere, Parking
from router.upstream.base import Message, MessageHandler, refusal
from router.upstream.leases import Client, Lease
from router.upstream.pool import BackendPool

# (replica, server, params, ctx) -> the upstream reply, from the replica that parked the call
ForwardParked = Callable[[str, str, dict[str, Any], CallContext], Awaitable[Message]]


class EraBridge:
    def __init__(
        self, pool: BackendPool, parking: Parking, forward_parked: ForwardParked | None = None
    ) -> None:
        self.pool = pool
        self.parking = parking
        # With shared state: carries a retry of a call parked on another replica there.
        self.forward_parked = forward_parked

    async def start(
        self,
        ctx: CallContext,
        server: str,
        relay: CallRelay,
        method: str,
        tool: str | None,
        headers: dict[str, str] | None,
    ) -> Message:
        """Start the upstream call parked; its reply, or an input-required result for its questions."""
        # The backend lends a session declaring this client's capabilities where it can (a stdio
        # child; not with roots, which are one client's data and this client has no session).
        client = Client(ctx.era, ctx.client_capabilities)

        async def call(handler: MessageHandler) -> Message:
            def handler_for(lease: Lease) -> MessageHandler:
                relay.lease = lease
                return handler

            return await self.pool.caller.call(
                server,
                method,
                relay.upstream_params,
                tool=tool,
                client=client,
                handler_for=handler_for,
                affinity=ctx.affinity,
                headers=headers,
                on_attempt=ctx.attempting,
            )

        async def respond(request_id: Any, reply: Message) -> None:
            if relay.lease is not None:
                await relay.lease.respond(request_id, reply)

        async def on_message(parked: ParkedCall, message: Message) -> None:
            if "id" in message and "method" in message:
                await parked.events.send(message)
            else:
                await parked.relay.notify(message)

        parked, event = await self.parking.park(server, call, respond, relay, on_message)
        return await self._drive(ctx, parked, event)

    async def resume(self, ctx: CallContext, server: str, params: dict[str, Any]) -> Message:
        """A retry carrying our `requestState`: answer the parked call's questions, go on with it."""
        parking = self.parking
        try:
            parked = parking.find(params["requestState"])
        except ParkedElsewhere as elsewhere:
            if self.forward_parked is None:
                raise
            return await self.forward_parked(elsewhere.replica, server, params, ctx)
        if parked.server != server:
            raise RPCError(INVALID_PARAMS, "requestState belongs to a call to another server")
        async with parked.lock:
            parked.relay.rebind(ctx, params)
            responses = params.get("inputResponses")
            responses = responses if isinstance(responses, dict) else {}
            missing = {key: q for key, q in parked.pending.items() if key not in responses}
            if missing:
                return {"result": self._input_required(parked, missing)}
            for key, question in parked.pending.items():
                await parked.respond(question["id"], {"result": responses[key]})
            parked.pending.clear()
            return await self._drive(ctx, parked, await self._next(parked))

    async def _next(self, parked: ParkedCall) -> Message:
        """The parked call's next event; if the client goes away meanwhile, the call goes too."""
        try:
            return await self.parking.next_event(parked)
        except anyio.get_cancelled_exc_class():
            self.parking.drop(parked)
            raise

    async def _drive(self, ctx: CallContext, parked: ParkedCall, event: Message) -> Message:
        """Turn the parked call's questions into an input-required result, or return its reply."""
        while True:
            if "_done" in event:
                self.parking.finished(parked)
                reply: Message = event["_done"]
                return reply
            problem = capability_problem(ctx, event["method"])
            if event["method"] == "ping":
                await parked.respond(event["id"], {"result": {}})
            elif problem is not None:
                await parked.respond(event["id"], refusal(event["method"], problem))
            else:
                parked.pending[f"q{len(parked.pending) + 1}-{event['id']}"] = event
                # Questions asked together go out together.
                try:
                    event = parked.inbox.receive_nowait()
                    continue
                except anyio.WouldBlock:
                    return {"result": self._input_required(parked, parked.pending)}
            event = await self._next(parked)

    def _input_required(self, parked: ParkedCall, questions: dict[str, Message]) -> dict[str, Any]:
        return {
            "resultType": "input_required",
            "inputRequests": {
                key: {"method": q["method"], **({"params": untied(q["params"])} if "params" in q else {})}
                for key, q in questions.items()
            },
            "requestState": self.parking.state_for(parked),
        }
