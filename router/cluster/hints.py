"""Breaker transitions as hints between replicas, over core NATS (`<prefix>.breaker`).

A hint is advice, not state: a replica that hears "instance X opened" prefers X's siblings
until X's announced retry time, but keeps its own breaker and still calls X when nothing else
is left. Lost hints cost nothing but a few failed calls, so core NATS (at most once) suffices.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import orjson
from anyio.abc import TaskGroup
from nats.aio.msg import Msg

from router.cluster.link import NatsLink
from router.lifecycle import Service
from router.upstream.breaker import BreakerState, Transition

log = logging.getLogger("toolmesh.upstream")


class NatsHints(Service):
    def __init__(self, link: NatsLink) -> None:
        self.link = link
        self.subject = link.subject("breaker")
        self.replica = uuid.uuid4().hex[:12]
        self._callbacks: list[Transition] = []
        self._pending: set[asyncio.Task[bool]] = set()
        self._subscribed = False

    async def start(self, tg: TaskGroup) -> None:
        self.link.watch(self._on_link)

    async def _on_link(self, up: bool) -> None:
        """Subscribe once the link is first up (the client keeps it after)."""
        if up and not self._subscribed:
            self._subscribed = await self.link.subscribe(self.subject, self._on_message) is not None

    def publish(self, server: str, instance: str, state: BreakerState, retry_in: float) -> None:
        if not self.link.connected:
            return
        body = orjson.dumps(
            {
                "replica": self.replica,
                "server": server,
                "instance": instance,
                "state": state,
                "retryIn": retry_in,
            }
        )
        task = asyncio.get_running_loop().create_task(self.link.publish(self.subject, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def subscribe(self, callback: Transition) -> None:
        self._callbacks.append(callback)

    async def _on_message(self, msg: Msg) -> None:
        try:
            hint = orjson.loads(msg.data)
            if hint["replica"] == self.replica:
                return
            server, instance, state = str(hint["server"]), str(hint["instance"]), hint["state"]
            retry_in = float(hint["retryIn"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("malformed breaker hint ignored")
            return
        if state not in ("open", "half-open", "closed"):
            return
        for callback in self._callbacks:
            callback(server, instance, state, retry_in)
