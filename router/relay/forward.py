"""Forwarding a named request to its backend and its reply back: the part of every `tools/call`,
`prompts/get`, `resources/read` and `completion/complete` after the dispatcher resolved its target.

`Forwarder.forward` relays the call (`CallRelay`: progress, logs and the backend's questions go to
the client), bridges a 2026-07-28 client to a backend that speaks only the session era
(`EraBridge`, parked calls), completes a 2026-07-28 backend's `input_required` for a legacy client
by asking it, and returns the result as the client's era sees it. Each attempt goes through the
pool's caller (balancing, breakers, retries) for a `Client` the upstream side leases a session to,
with the request's own headers: trace context, the agent's credential for that backend, and the
identity token the router signs for backends that opt in.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from anyio.abc import TaskGroup

from router.catalog.index import Target
from router.eras import for_era, is_modern
from router.errors import INVALID_PARAMS, BackendUnavailable, RPCError
from router.guard.backend_tokens import BackendSigner
from router.guard.credential_keys import KeyedSecrets
from router.guard.views import NamespaceView
from router.relay.asking import Asker
from router.relay.call_relay import CallRelay
from router.relay.context import CallContext
from router.relay.era_bridge import EraBridge, ForwardParked
from router.relay.parking import Parking, StateCodec
from router.upstream.base import Message, MessageHandler, Outside
from router.upstream.leases import Client, Lease
from router.upstream.pool import BackendPool


class Forwarder:
    def __init__(
        self,
        pool: BackendPool,
        asker: Asker | None,
        parking: Parking | None,
        forward_parked: ForwardParked | None,
        *,
        forward_identity: bool = False,
        signer: BackendSigner | None = None,
        secrets: KeyedSecrets | None = None,
    ) -> None:
        self.pool = pool
        self.asker = asker
        # Only with parking: how 2026-07-28 clients use legacy backends that ask questions.
        self.bridge = EraBridge(pool, parking, forward_parked) if parking is not None else None
        self.forward_identity = forward_identity
        self.signer = signer  # signs identity tokens for backends that opt in
        self.secrets = secrets  # credentials kept in Consul/etcd
        self._progress_ids = itertools.count(1)
        # Where backends' questions to clients are answered: the dispatcher's task group while
        # the dispatcher runs, None otherwise.
        self.questions: TaskGroup | None = None

    async def forward(
        self, ctx: CallContext, target: Target, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        # A legacy client's capabilities and log level reach a 2026-07-28 backend in each
        # request's envelope, added by the upstream session (`Client.envelope`).
        bridge, modern = self.bridge, is_modern(ctx.era)
        if bridge is not None and StateCodec.is_ours(params.get("requestState")):
            reply = await bridge.resume(ctx, target.server, params)
            return self._result(ctx, target, reply)
        relay = CallRelay(ctx, params, next(self._progress_ids), self.asker, self.questions)
        tool = target.name if method == "tools/call" else None
        # Bridging is for a backend that does not speak this client's era (a backend that
        # speaks both is spoken to in it: upstream/other_era.py).
        if modern and bridge is not None and not await self.pool.pick(target.server).speaks(ctx.era):
            headers = await self._upstream_headers(ctx, target.server)
            reply = await bridge.start(ctx, target.server, relay, method, tool, headers)
            return self._result(ctx, target, reply)
        reply = await self._call(ctx, target.server, relay, method, relay.upstream_params, tool)
        result = self._result(ctx, target, reply)
        if not modern and result.get("resultType") == "input_required" and self.asker is not None:

            async def again(answers: dict[str, Any], state: Any) -> dict[str, Any]:
                retry = {**relay.upstream_params, "inputResponses": answers}
                if state is not None:
                    retry["requestState"] = state
                return self._result(
                    ctx, target, await self._call(ctx, target.server, relay, method, retry, tool)
                )

            result = await self.asker.complete_input_required(ctx, result, again)
        return for_era(result, ctx.era)

    async def _call(
        self,
        ctx: CallContext,
        server: str,
        relay: CallRelay,
        method: str,
        params: dict[str, Any],
        tool: str | None,
    ) -> Message:
        """One upstream call through the caller (balancing, breakers, retries); questions the
        backend asks meanwhile are answered in the dispatcher's question task group."""
        client = Client(ctx.era, ctx.client_capabilities, ctx.session_id, self._outside(ctx), ctx.log_level)

        def handler_for(lease: Lease) -> MessageHandler:
            """Per attempt: the client's own upstream session, if the backend lent one, is
            remembered with the client's session; questions are answered on the lease."""
            own = lease.own_session_id
            if own is not None and ctx.upstream is not None:
                ctx.upstream[f"{lease.backend.server}/{lease.backend.record.instance_id}"] = {
                    "session_id": own
                }
            return relay.handler_for(lease)

        relay.begin()
        began = time.perf_counter()
        try:
            return await self.pool.caller.call(
                server,
                method,
                params,
                tool=tool,
                client=client,
                handler_for=handler_for,
                affinity=ctx.affinity,
                headers=await self._upstream_headers(ctx, server),
                param_headers=ctx.forward_headers,
                on_attempt=ctx.attempting,
            )
        finally:
            ctx.upstream_time = (began, time.perf_counter())  # for the upstream span (observe/otel.py)
            relay.end()  # questions still being answered end with the call

    def _outside(self, ctx: CallContext) -> Outside | None:
        """How this client answers what a backend asks or says on the client's own upstream
        session outside any call: requests go to its GET stream, logs too; list changes and
        resource updates reach everyone through the shared session, so they are not its own."""
        session_id, asker = ctx.session_id, self.asker
        if session_id is None or asker is None:
            return None
        capabilities = ctx.client_capabilities

        async def outside(message: Message) -> Message | None:
            method = message.get("method")
            if "id" in message and isinstance(method, str):
                return await asker.ask_outside(session_id, capabilities, method, message.get("params"))
            if method == "notifications/message":
                await asker.bus.deliver(session_id, message)
            return None

        return outside

    def _result(self, ctx: CallContext, target: Target, reply: Message) -> dict[str, Any]:
        result = reply.get("result")
        if isinstance(result, dict):
            return result
        error = reply.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), int):
            raise RPCError(error["code"], str(error.get("message", "")), error.get("data"))
        raise RPCError(-32603, f"server '{target.server}' sent a malformed response")

    async def _upstream_headers(self, ctx: CallContext, server: str) -> dict[str, str] | None:
        """Per-request headers for HTTP backends: trace context and, if enabled, who is asking.

        The agent's own Authorization never goes upstream: client headers are not forwarded at
        all, and a backend's credentials come from its catalog entry (router/catalog/config_file.py).
        """
        policy = self.pool.policy_of(server)
        identity = policy.identity if policy is not None and self.signer is not None else None
        credential = (
            policy.credential_for(ctx.agent.id, ctx.agent.groups) if policy and policy.credentials else None
        )
        if ctx.trace is None and not self.forward_identity and identity is None and credential is None:
            return None
        headers: dict[str, str] = {}
        if credential is not None:  # the agent's or its group's own credential
            headers.update(credential.headers)
            if credential.key is not None:
                if self.secrets is None:
                    raise BackendUnavailable(
                        server, "its credential is kept in a store this router does not read"
                    )
                headers["Authorization"] = f"Bearer {await self.secrets.get(server, credential.key)}"
        if identity is not None and self.signer is not None:
            view = ctx.view
            headers |= self.signer.headers(
                identity, identity.audience or server, ctx.agent.id, ctx.agent.groups,
                view.namespace.name if isinstance(view, NamespaceView) else "",
                ctx.attempt or (ctx.trace.trace_id if ctx.trace is not None else None),
            )  # fmt: skip
        if ctx.trace is not None:
            headers["traceparent"] = ctx.trace.traceparent()
        if self.forward_identity:
            headers["x-toolmesh-agent"] = ctx.agent.id
            headers["x-toolmesh-groups"] = ",".join(sorted(ctx.agent.groups))
        return headers

    async def resume_here(self, server: str, params: dict[str, Any], ctx: CallContext) -> Message:
        """Serve a retry another replica forwarded for a call parked here."""
        if self.bridge is None:
            raise RPCError(INVALID_PARAMS, "this replica parks no calls")
        return await self.bridge.resume(ctx, server, params)
