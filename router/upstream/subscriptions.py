"""Resource subscriptions and list-change streams toward one backend instance.

Clients subscribe to exposed resource URIs; the relay tells each backend which of its upstream
URIs anyone wants (`Subscriptions.want`). A legacy backend is sent `resources/subscribe` and
`resources/unsubscribe` on the shared session until its set matches; a 2026-07-28 backend is held
a `subscriptions/listen` stream naming the list kinds it offers and the URIs, re-opened when the
URIs change or the stream drops. Either way the backend's news takes the same path afterwards
(the channel's unsolicited handler). The set survives reconnects: it is applied on every
connection.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from router.errors import BackendError, SessionExpired
from router.upstream.base import Message, MessageHandler, error_of
from router.upstream.session import UpstreamSession

log = logging.getLogger("toolmesh.upstream")

LIST_FLAGS = {
    "tools": "toolsListChanged",
    "prompts": "promptsListChanged",
    "resources": "resourcesListChanged",
}


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def can_subscribe(session: UpstreamSession) -> bool:
    resources = session.capabilities.get("resources")
    return isinstance(resources, dict) and bool(resources.get("subscribe"))


class Subscriptions:
    def __init__(self, server: str, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        # Upstream resource URIs some client subscribed to; kept subscribed on every (re)connect.
        self.uris: frozenset[str] = frozenset()
        self._changed = anyio.Event()

    def want(self, uris: frozenset[str]) -> None:
        """The upstream URIs clients want updates of now; applied in the background."""
        if uris != self.uris:
            self.uris = uris
            self._changed.set()

    async def sync_legacy(self, session: UpstreamSession) -> None:
        """resources/subscribe and unsubscribe upstream until the set matches what clients want."""
        applied: frozenset[str] = frozenset()
        while True:
            wanted = self.uris if can_subscribe(session) else frozenset()
            for method, uris in (
                ("resources/subscribe", wanted - applied),
                ("resources/unsubscribe", applied - wanted),
            ):
                for uri in sorted(uris):
                    try:
                        await session.request(method, {"uri": uri}, self.timeout)
                    except BackendError as exc:
                        log.warning("%s failed", method, extra={"server": self.server, "reason": exc.message})
            applied = wanted
            self._changed = anyio.Event()
            if self.uris != applied:
                continue
            await self._changed.wait()

    async def listen_modern(self, session: UpstreamSession, on_message: MessageHandler) -> None:
        """Hold a subscriptions/listen stream to a 2026-07-28 backend, re-opened when the resource
        URIs change or the stream drops; its events go to `on_message`, as legacy ones do."""
        delay = 0.2
        while True:
            notifications: dict[str, Any] = {
                flag: True for kind, flag in LIST_FLAGS.items() if kind in session.capabilities
            }
            if self.uris and can_subscribe(session):
                notifications["resourceSubscriptions"] = sorted(self.uris)
            if not notifications:
                return
            changed = self._changed = anyio.Event()
            reply: Message | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_when, changed, tg.cancel_scope)
                try:
                    reply = await session.listen(notifications, on_message)
                except (BackendError, SessionExpired) as exc:
                    log.debug("listen stream dropped", extra={"server": self.server, "reason": str(exc)})
                tg.cancel_scope.cancel()
            if reply is not None and error_of(reply).get("code") == -32601:
                return  # the backend has no listen streams
            if not changed.is_set():
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                delay = 0.2
