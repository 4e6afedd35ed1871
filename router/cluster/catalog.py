"""Catalog changes one replica notices, made known to the others.

Every replica watches the same catalog source and keeps its own upstream sessions, so most
changes reach every replica by themselves, and each tells the clients whose streams it holds
(every stream is on exactly one replica: each client hears a change once). What one replica
alone can notice is a backend's `list_changed` sent only on that replica's upstream session.
So when this replica's index changes, it publishes which servers' definitions changed; the
others refetch those servers' lists, and if that changes their index, their own clients are
told by the usual path. A replica that already had the change finds nothing new and stays
silent, which is what keeps notifications to one per client and ends the echo.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import orjson
from anyio.abc import TaskGroup
from nats.aio.msg import Msg

from router.catalog.index import Index
from router.cluster.link import NatsLink
from router.lifecycle import Service

log = logging.getLogger("toolmesh.catalog")


class CatalogSync(Service):
    def __init__(self, link: NatsLink, refresh: Callable[[set[str]], int]) -> None:
        """`refresh(servers)` refetches those servers' lists here; how many backends it asked."""
        self.link = link
        self.refresh = refresh
        self.replica = secrets.token_hex(8)
        self.subject = link.subject("catalog", "changed")
        self.refreshes = 0
        self._subscribed = False

    async def start(self, tg: TaskGroup) -> None:
        self.link.watch(self._on_link)

    async def _on_link(self, up: bool) -> None:
        """Subscribe once the link is first up (the client keeps the subscription across reconnects)."""
        if up and not self._subscribed:
            self._subscribed = True
            await self.link.subscribe(self.subject, self._on_hint)

    async def on_index_change(self, old: Index, new: Index) -> None:
        changed = sorted(
            server for server, definitions in new.servers.items() if old.servers.get(server) != definitions
        )
        if changed:
            payload = orjson.dumps({"replica": self.replica, "servers": changed})
            await self.link.publish(self.subject, payload)

    async def _on_hint(self, msg: Msg) -> None:
        hint = orjson.loads(msg.data)
        if hint.get("replica") == self.replica:
            return
        servers = set(hint.get("servers") or ())
        self.refreshes += self.refresh(servers)
        log.debug("catalog hint from another replica", extra={"servers": sorted(servers)})
