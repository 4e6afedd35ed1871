"""Retries of parked calls (era bridging) that land on a replica other than the one parking them.

A 2026-07-28 client's retry (`inputResponses` + `requestState`) may reach any replica, but the
upstream call it resumes runs on the replica that parked it. The state names that replica; this
module carries the retry there over NATS request/reply (`<prefix>.parked.<replica>`) and the
upstream reply back, so the client does not notice. Progress and log messages of the resumed round
stay on the parking replica (the retry's stream is elsewhere). If that replica is gone, or NATS
is down, the client gets the retryable error of `ParkedElsewhere`: send the request again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from router.cluster.link import NatsLink, ReplicaService
from router.errors import RPCError
from router.relay.context import CallContext
from router.relay.parking import ParkedElsewhere
from router.upstream.base import Message

log = logging.getLogger("toolmesh.relay")

# (server, params, ctx) -> the upstream reply of a call parked here (`Dispatcher.resume_here`)
ResumeHere = Callable[[str, dict[str, Any], CallContext], Awaitable[Message]]


class ParkedLink(ReplicaService):
    def __init__(self, link: NatsLink, replica: str, timeout: float, resume_here: ResumeHere) -> None:
        super().__init__(link, "parked", replica)
        self.resume_here = resume_here
        self.replica = replica
        self.timeout = timeout

    async def forward(self, replica: str, server: str, params: dict[str, Any], ctx: CallContext) -> Message:
        nc = self.link.nc
        if nc is None or not self.link.connected:
            raise ParkedElsewhere(replica)
        body = orjson.dumps({"server": server, "params": params, "capabilities": ctx.client_capabilities})
        try:
            answer = await nc.request(self.link.subject("parked", replica), body, timeout=self.timeout)
        except (NoRespondersError, NatsTimeout):
            raise ParkedElsewhere(replica) from None
        reply = orjson.loads(answer.data)
        if "forward_error" in reply:
            error = reply["forward_error"]
            raise RPCError(int(error["code"]), str(error["message"]), error.get("data"))
        message: Message = reply
        return message

    async def handle(self, msg: Msg) -> None:
        request = orjson.loads(msg.data)
        ctx = CallContext("modern", client_capabilities=request.get("capabilities") or {})
        try:
            reply: dict[str, Any] = await self.resume_here(request["server"], request["params"], ctx)
        except RPCError as exc:
            reply = {"forward_error": exc.to_error()}
        except Exception as exc:  # a bug must not leave the other replica waiting for nothing
            log.exception("forwarded retry failed")
            reply = {"forward_error": {"code": -32603, "message": f"internal error: {exc!r}"}}
        await msg.respond(orjson.dumps(reply))
