"""Resource updates one replica's upstream hears, delivered on every replica, once per stream.

A backend tells `notifications/resources/updated` to upstream sessions, and each replica has its
own. Which of them hears an update depends on the backend: many tell only the session whose call
changed the resource (the SDKs' `send_resource_updated` is per session), others every session
that subscribed. A client's stream (a legacy GET stream or a 2026-07-28 `subscriptions/listen`
stream) is held by one replica, which may not be the one that heard it.

So every replica publishes each update its upstream hears on `<prefix>.resources.updated`, and
every replica hands each update, heard itself or published by another, to the streams it holds
that asked for that URI (`McpEndpoint.broadcast`). When several replicas heard the same update,
each copy comes from a different replica within moments of the others: `Copies` lets the first
through and drops the copies, matching each replica's reports one to one, so two real updates
that several replicas heard are still two. What it cannot tell apart: two different updates of
one URI that two different replicas alone heard within `WINDOW` of each other count as one
(the client is told, and re-reads, once).

With NATS down each replica delivers what it hears itself, as before it was shared.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup
from nats.aio.msg import Msg

from router.cluster.link import NatsLink
from router.lifecycle import Service

log = logging.getLogger("toolmesh.relay")

Message = dict[str, Any]
# Copies of one update reach a replica within this many seconds of each other (NATS on a LAN and
# backends telling their sessions one after another take milliseconds).
WINDOW = 0.5
# Past this many URIs, forget those with nothing recent (they are kept only for WINDOW).
SWEEP_AT = 1024


class Copies:
    """Per URI, the updates delivered in the last `window` seconds and which replicas reported each."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._recent: dict[str, deque[tuple[float, set[str]]]] = {}

    def first(self, uri: str, source: str, now: float | None = None) -> bool:
        """Is this report from `source` a new update (deliver it), not a copy of a recent one?

        A copy is a report of an update already delivered on another source's report that
        `source` has not reported yet; each source reports each update it hears once."""
        now = time.monotonic() if now is None else now
        if len(self._recent) > SWEEP_AT:
            self._sweep(now)
        recent = self._recent.setdefault(uri, deque())
        while recent and now - recent[0][0] > self.window:
            recent.popleft()
        for _, sources in recent:
            if source not in sources:
                sources.add(source)
                return False
        recent.append((now, {source}))
        return True

    def _sweep(self, now: float) -> None:
        for uri in [
            u for u, recent in self._recent.items() if not recent or now - recent[-1][0] > self.window
        ]:
            del self._recent[uri]


class SharedUpdates(Service):
    """What the router calls with each resource update its upstream hears, when state is shared."""

    def __init__(self, link: NatsLink, replica: str, deliver: Callable[[Message], int]) -> None:
        self.link = link
        self.replica = replica
        self.deliver = deliver
        self.subject = link.subject("resources", "updated")
        self.copies = Copies()
        self._subscribed = False

    async def start(self, tg: TaskGroup) -> None:
        self.link.watch(self._on_link)

    async def _on_link(self, up: bool) -> None:
        """Hear the other replicas' updates once the link is first up."""
        if up and not self._subscribed:
            self._subscribed = True
            await self.link.subscribe(self.subject, self._on_update)

    async def heard(self, message: Message) -> None:
        """An update this replica's upstream heard: deliver it here and tell the others."""
        uri = message["params"]["uri"]
        if self.copies.first(uri, self.replica):
            self.deliver(message)
        else:
            log.debug("resource update copy matched", extra={"uri": uri, "replica": self.replica})
        await self.link.publish(self.subject, orjson.dumps({"replica": self.replica, "message": message}))

    async def _on_update(self, msg: Msg) -> None:
        report = orjson.loads(msg.data)
        source, message = report.get("replica"), report.get("message")
        if source == self.replica or not isinstance(message, dict):
            return
        uri = (message.get("params") or {}).get("uri")
        if not isinstance(uri, str):
            return
        if self.copies.first(uri, str(source)):
            self.deliver(message)
            log.debug("resource update from another replica", extra={"uri": uri, "replica": source})
        else:
            log.debug("resource update copy matched", extra={"uri": uri, "replica": source})


class SharedInterests(Service):
    """The resource URIs the listen streams of every replica want, so every replica subscribes
    upstream to them.

    A legacy session's subscriptions are in its shared record, so every replica subscribes
    upstream for them; a 2026-07-28 listen stream has no record. Yet the replica a call goes
    through may be the only one to hear the update it causes (its own stdio child, its own
    upstream session) and a backend tells only sessions that subscribed. So each replica
    announces the URIs its listen streams want on `<prefix>.listen.interests` when they change
    and every `heartbeat` seconds; the others add them to what they subscribe to upstream, and
    forget a replica not heard from for three heartbeats.
    """

    def __init__(
        self, link: NatsLink, replica: str, on_change: Callable[[], None], heartbeat: float = 5.0
    ) -> None:
        self.link = link
        self.replica = replica
        self.on_change = on_change
        self.heartbeat = heartbeat
        self.subject = link.subject("listen", "interests")
        self._local: frozenset[str] = frozenset()
        self._changed = anyio.Event()
        self._remote: dict[str, tuple[frozenset[str], float]] = {}  # replica -> (uris, when heard)
        self._subscribed = False

    def remote(self) -> set[str]:
        """What the other replicas' listen streams want."""
        uris: set[str] = set()
        for wanted, _ in self._remote.values():
            uris |= wanted
        return uris

    def set_local(self, uris: frozenset[str]) -> None:
        """What this replica's listen streams want now (announced at once if it changed)."""
        if uris != self._local:
            self._local = uris
            self._changed.set()

    async def start(self, tg: TaskGroup) -> None:
        self.link.watch(self._on_link)
        tg.start_soon(self._announce)

    async def _on_link(self, up: bool) -> None:
        if up and not self._subscribed:
            self._subscribed = True
            await self.link.subscribe(self.subject, self._on_interests)

    async def _announce(self) -> None:
        """Announce this replica's interests on change and every heartbeat; expire silent ones."""
        while True:
            with anyio.move_on_after(self.heartbeat):
                await self._changed.wait()
            self._changed = anyio.Event()
            payload = {"replica": self.replica, "uris": sorted(self._local)}
            await self.link.publish(self.subject, orjson.dumps(payload))
            horizon = time.monotonic() - 3 * self.heartbeat
            gone = [replica for replica, (_, heard) in self._remote.items() if heard < horizon]
            if any(self._remote.pop(replica)[0] for replica in gone):
                self.on_change()  # its upstream subscriptions may go

    async def _on_interests(self, msg: Msg) -> None:
        report = orjson.loads(msg.data)
        replica, uris = report.get("replica"), report.get("uris")
        if replica == self.replica or not isinstance(replica, str) or not isinstance(uris, list):
            return
        wanted = frozenset(u for u in uris if isinstance(u, str))
        before = self._remote.get(replica)
        self._remote[replica] = (wanted, time.monotonic())
        if before is None or before[0] != wanted:
            log.debug(
                "listen interests of another replica", extra={"replica": replica, "uris": sorted(wanted)}
            )
            self.on_change()
