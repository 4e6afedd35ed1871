"""One call to a server: choose an instance, wait for a slot, run it under the breaker, retry.

Retry rules, in order:

1. The request never reached a backend (connection refused, instance not connected, breaker
   open, slots and queue full): it is sent to another instance. Nothing was executed, so this is
   always safe.
2. It reached the backend and failed (timeout, connection dropped mid-call): it is sent again
   only if the operation is safe to repeat: reads (`prompts/get`, `resources/read`,
   `completion/complete`), tools whose catalog entry says `"retry": "safe"`, and tools annotated
   `readOnlyHint` or `idempotentHint` on servers the operator marked `trusted` (a server's own
   annotations are otherwise just claims). A per-tool `"retry": "never"` wins over annotations.
3. An answer is an answer: a JSON-RPC error from the backend is passed to the client untouched.

No instance is tried twice for one call, and at most `max_attempts` are tried.

Fail fast: once every ready instance of a server has an open breaker, the earliest moment one
of them may take a trial is known. Until then `refuse_if_open(server)` refuses a call with one
dictionary lookup, before the relay builds anything for it (and before it counts against a rate
limit). Any breaker transition, instance change or backend state change forgets that moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.errors import BackendError, BackendUnavailable, BackendUnreachable, CircuitOpen
from router.upstream.backend import HandlerFor
from router.upstream.balancer import Instance, choose
from router.upstream.base import Message
from router.upstream.breaker import BreakerBoard
from router.upstream.leases import Client

log = logging.getLogger("toolmesh.upstream")

READS = frozenset({"prompts/get", "resources/read", "completion/complete"})


@dataclass(frozen=True, slots=True)
class CallSettings:
    """Router-wide defaults; a server's catalog policy may override some of them."""

    max_concurrency: int = 64
    max_queue: int = 256
    queue_timeout: float = 5.0
    max_attempts: int = 3
    breaker_failures: int = 5
    breaker_reset: float = 10.0


class Caller:
    def __init__(self, by_server: Mapping[str, list[Instance]], board: BreakerBoard, settings: CallSettings):
        self._by_server = by_server
        self.board = board
        self.settings = settings
        self._open_until: dict[str, float] = {}  # server -> monotonic time its first trial is due
        board.listeners.append(lambda server, *_: self.forget(server))

    def refuse_if_open(self, server: str) -> None:
        """Raise CircuitOpen at once while every instance of `server` is known to be open."""
        until = self._open_until.get(server)
        if until is not None:
            wait = until - time.monotonic()
            if wait > 0:
                raise CircuitOpen(server, wait)
            self._open_until.pop(server, None)

    def serving(self, server: str) -> bool:
        """Whether some instance of `server` is ready and not breaker-open (for tool search,
        which ranks tools that cannot be called now below those that can)."""
        return any(
            i.backend.state == "ready" and not i.critical and i.breaker.available()
            for i in self._by_server.get(server, ())
        )

    def all_open(self, server: str) -> bool:
        """Is every instance of `server` behind an open breaker that is not due a trial yet?"""
        instances = self._by_server.get(server) or []
        return bool(instances) and all(
            i.breaker.state == "open" and i.breaker.retry_in() > 0 for i in instances
        )

    def forget(self, server: str) -> None:
        """Something about `server`'s instances changed: decide afresh on the next call."""
        self._open_until.pop(server, None)

    async def call(
        self,
        server: str,
        method: str,
        params: Mapping[str, Any] | None,
        *,
        tool: str | None = None,
        client: Client | None = None,
        handler_for: HandlerFor | None = None,
        affinity: MutableMapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        param_headers: Mapping[str, str] | None = None,
        on_attempt: Callable[[Instance], None] | None = None,
    ) -> Message:
        """Each attempt goes on the instance's lease for `client` (`Backend.call`); `handler_for`
        is given that lease and returns the handler for what the backend sends during the call."""
        instances = self._by_server.get(server, ())
        preferred = affinity.get(server) if affinity else None
        tried: list[Instance] = []
        failure: BackendError | None = None
        while len(tried) < self.settings.max_attempts:
            instance = choose(instances, self.board, tried, preferred)
            if instance is None:
                break
            tried.append(instance)
            if on_attempt is not None:
                on_attempt(instance)
            try:
                reply = await self._attempt(
                    instance, method, params, tool, client, handler_for, headers, param_headers
                )
            except BackendError as exc:
                failure = exc
                if not isinstance(exc, BackendUnreachable) and not self.repeatable(instance, method, tool):
                    raise
                log.info(
                    "retrying on another instance",
                    extra={"server": server, "instance": instance.instance_id, "reason": exc.message},
                )
                continue
            if affinity is not None and len(instances) > 1 and preferred != instance.instance_id:
                affinity[server] = instance.instance_id  # saved with the session (shared store)
            return reply
        if failure is not None:
            raise failure
        raise self.none_available(server, tried)

    async def _attempt(
        self,
        instance: Instance,
        method: str,
        params: Mapping[str, Any] | None,
        tool: str | None,
        client: Client | None,
        handler_for: HandlerFor | None,
        headers: Mapping[str, str] | None,
        param_headers: Mapping[str, str] | None,
    ) -> Message:
        policy = instance.backend.record.policy.tool(tool) if tool is not None else None
        timeout = policy.timeout if policy is not None else None
        await instance.slots.acquire()
        instance.outstanding += 1
        try:
            with instance.breaker.guard():
                return await instance.backend.call(
                    method,
                    params,
                    handler_for,
                    client=client,
                    headers=headers,
                    timeout=timeout,
                    param_headers=param_headers,
                )
        finally:
            instance.outstanding -= 1
            instance.slots.release()

    def may_repeat(self, server: str, tool: str) -> bool:
        """May a call of `tool` run twice, whichever instance of `server` runs it? (The catalog
        entry and the definitions, which decide it, are the same for every instance.)"""
        instances = self._by_server.get(server)
        return (
            instances is not None and len(instances) > 0 and self.repeatable(instances[0], "tools/call", tool)
        )

    def repeatable(self, instance: Instance, method: str, tool: str | None) -> bool:
        """May this operation run twice? (See the module docstring.)"""
        if method in READS:
            return True
        if method != "tools/call" or tool is None:
            return False
        record = instance.backend.record
        policy = record.policy.tool(tool)
        if policy is not None and policy.retry is not None:
            return policy.retry == "safe"
        if not record.policy.trusted or instance.backend.definitions is None:
            return False
        for definition in instance.backend.definitions.tools:
            if definition.get("name") == tool:
                hints = definition.get("annotations", {})  # an object: router/catalog/wellformed.py
                return bool(hints.get("readOnlyHint") or hints.get("idempotentHint"))
        return False

    def none_available(self, server: str, tried: Sequence[Instance]) -> BackendUnavailable:
        """Why no instance can take the call, naming the server and when it may work again."""
        instances = self._by_server.get(server, ())
        if not instances:
            return BackendUnavailable(server, "it is not in the catalog")
        ready = [i for i in instances if i.backend.state == "ready" and not i.breaker.available()]
        if ready and len(ready) == len([i for i in instances if i.backend.state == "ready"]):
            soonest = min(i.breaker.retry_in() for i in ready)
            if soonest > 0:  # no trial due or running: nothing changes before then unless told
                self._open_until[server] = time.monotonic() + soonest
            return CircuitOpen(server, min(i.breaker.wait_hint() for i in ready))
        down = [i for i in instances if i.backend.state != "ready"]
        if down:
            return BackendUnavailable(server, down[0].backend._down_reason())
        return BackendUnavailable(server, "every instance is marked critical by the registry")
