"""One upstream call's traffic back to its client: related notifications and the backend's
questions.

A CallRelay lives for one call (or, for a parked call, across its rounds). It rewrites the
client's progress token to one unique to the router, filters logs by the client's level, sends
list changes and resource updates to everyone interested, and answers a backend's questions
(sampling, elicitation, roots) by asking the client, in the router-wide task group.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import anyio
from anyio.abc import TaskGroup

from router.eras import LOG_LEVELS, is_modern
from router.errors import INTERNAL_ERROR
from router.relay.asking import Asker, untied
from router.relay.context import CallContext
from router.upstream.base import Message, MessageHandler
from router.upstream.leases import Lease

log = logging.getLogger("toolmesh.relay")

# Notifications a backend may send on a call's stream that concern every interested client.
FANOUT = frozenset({
    "notifications/tools/list_changed", "notifications/prompts/list_changed",
    "notifications/resources/list_changed", "notifications/resources/updated",
})  # fmt: skip


class CallRelay:
    """Carries a call's related messages back to the client's stream, and the backend's questions
    to the client.

    The client's progress token is replaced upstream by one unique to the router, because one
    upstream session serves many clients and two of them may pick the same token.
    """

    __slots__ = (
        "asker", "ctx", "in_call", "lease", "questions", "tasks", "token", "upstream_params",
    )  # fmt: skip

    def __init__(
        self,
        ctx: CallContext,
        params: dict[str, Any],
        unique: int,
        asker: Asker | None,
        tasks: TaskGroup | None = None,
    ) -> None:
        self.ctx, self.asker = ctx, asker
        self.lease: Lease | None = None  # the upstream session of the current attempt
        self.tasks = tasks  # where questions are answered; None: they are refused
        self.in_call = False
        self.questions: list[anyio.CancelScope] = []  # of questions being answered
        meta = params.get("_meta")
        self.token = meta.get("progressToken") if isinstance(meta, dict) else None
        self.upstream_params = params
        if self.token is not None:
            self.upstream_params = {**params, "_meta": {**params["_meta"], "progressToken": f"tm-{unique}"}}

    def begin(self) -> None:
        self.in_call = True

    def end(self) -> None:
        """The upstream call is over: questions it left unanswered are abandoned."""
        self.in_call = False
        for scope in self.questions:
            scope.cancel()

    def handler_for(self, lease: Lease) -> MessageHandler:
        """The message handler for one attempt: requests are answered on the lease that asked."""
        self.lease = lease
        return self.on_message

    def rebind(self, ctx: CallContext, params: dict[str, Any]) -> None:
        """A parked call's next round: related messages go to the retry's stream and token."""
        self.ctx = ctx
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if token is not None:
            self.token = token

    async def on_message(self, message: Message) -> None:
        lease = self.lease
        assert lease is not None, "handler_for sets the attempt's lease before any message"
        if "id" in message and "method" in message:
            if self.tasks is None or self.asker is None or not self.in_call:
                await lease.answer_outside_call(message)
            else:  # the client may take minutes; never block the channel's reader meanwhile
                self.tasks.start_soon(self._ask, lease, message)
            return
        await self.notify(message)

    async def _ask(self, lease: Lease, message: Message) -> None:
        assert self.asker is not None
        if not self.in_call:
            return  # the call ended before this question got its turn
        with anyio.CancelScope() as scope:
            self.questions.append(scope)
            try:
                reply = await self.asker.ask(self.ctx, message["method"], untied(message.get("params")))
                await lease.respond(message["id"], reply)
            except Exception:  # runs in the router-wide group: a failure must stay this call's
                log.exception("answering a backend's question failed", extra={"server": lease.backend.server})
                error = {"code": INTERNAL_ERROR, "message": "the router could not relay this request"}
                with contextlib.suppress(Exception):  # so the backend is not left waiting
                    await lease.respond(message["id"], {"error": error})
            finally:
                self.questions.remove(scope)

    async def notify(self, message: Message) -> None:
        method = message.get("method")
        if method in FANOUT:  # news for every interested client, even if it came in this call
            if self.lease is not None:
                await self.lease.backend.on_unsolicited(message)
            return
        if self.ctx.emit is None:
            return
        if method == "notifications/progress":
            if self.token is None:
                return
            message = {**message, "params": {**message.get("params", {}), "progressToken": self.token}}
        elif method == "notifications/message" and not self._level_allows(message):
            return
        await self.ctx.emit(message)

    def _level_allows(self, message: Message) -> bool:
        wanted = self.ctx.log_level
        if wanted is None:  # 2026-07-28: no logs unless the request asked for a level
            return not is_modern(self.ctx.era)
        level = (message.get("params") or {}).get("level")
        if level not in LOG_LEVELS:
            return True
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(wanted)
