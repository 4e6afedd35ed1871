"""A backend's definitions: every list it offers, fetched whole and refetched when it says so.

The lists are fetched once per connection (following the backend's cursors) and again when the
backend announces a change (`notifications/*/list_changed`) or another replica heard one
(`refresh`). Bursts of announcements coalesce into one refetch per list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio

from router.catalog.index import Definitions
from router.catalog.wellformed import Checked, wellformed
from router.errors import BackendError, BackendUnavailable
from router.upstream.base import error_of
from router.upstream.session import UpstreamSession

log = logging.getLogger("toolmesh.upstream")

# list method -> (capability it needs, result key, Definitions field)
LISTS: dict[str, tuple[str, str, str]] = {
    "tools/list": ("tools", "tools", "tools"),
    "prompts/list": ("prompts", "prompts", "prompts"),
    "resources/list": ("resources", "resources", "resources"),
    "resources/templates/list": ("resources", "resourceTemplates", "resource_templates"),
}
CHANGED: dict[str, tuple[str, ...]] = {
    "notifications/tools/list_changed": ("tools/list",),
    "notifications/prompts/list_changed": ("prompts/list",),
    "notifications/resources/list_changed": ("resources/list", "resources/templates/list"),
}
MAX_PAGES = 1000


class Listing:
    """The current definitions of one backend instance and what is due to be refetched."""

    def __init__(self, server: str, timeout: float, on_refetched: Callable[[], None]) -> None:
        self.server = server
        self.timeout = timeout
        self.on_refetched = on_refetched
        self.definitions: Definitions | None = None
        self._dirty: set[str] = set()
        self._announced: set[str] = set()
        self._wanted = anyio.Event()

    async def fetch_all(self, session: UpstreamSession) -> Definitions:
        """Every list, on a fresh connection."""
        self.definitions = await self._fetch(session, set(LISTS))
        return self.definitions

    def heard(self, method: str) -> bool:
        """A list_changed from the backend: refetch soon. False for any other message."""
        if method not in CHANGED:
            return False
        self._dirty.update(CHANGED[method])
        self._announced.add(method)
        self._wanted.set()
        return True

    def refresh(self) -> None:
        """Refetch every list soon, as if the backend had announced a change."""
        self._dirty.update(LISTS)
        self._wanted.set()

    def take_announced(self) -> set[str]:
        """The list_changed notifications received since the last call, once refetched."""
        if self._dirty:
            return set()  # not refetched yet: announce with the rebuild that follows the refetch
        announced, self._announced = self._announced, set()
        return announced

    async def refetch(self, session: UpstreamSession) -> None:
        """Coalesce bursts of list_changed into one refetch per list (a one-slot wake-up), for as
        long as the connection lasts."""
        while True:
            await self._wanted.wait()
            self._wanted = anyio.Event()
            methods, self._dirty = self._dirty, set()
            try:
                self.definitions = await self._fetch(session, methods)
            except BackendError as exc:
                log.warning(
                    "refreshing definitions failed", extra={"server": self.server, "reason": exc.message}
                )
                continue
            self.on_refetched()

    async def _fetch(self, session: UpstreamSession, methods: set[str]) -> Definitions:
        current = self.definitions or Definitions()
        fields: dict[str, Any] = {
            "tools": current.tools,
            "prompts": current.prompts,
            "resources": current.resources,
            "resource_templates": current.resource_templates,
        }
        repairs = dict(current.repairs)
        for method in sorted(methods):  # in one order: the repair counts are shown in it
            capability, key, field = LISTS[method]
            if capability in session.capabilities:
                fields[field], repairs[key] = await list_all(session, method, key, self.timeout)
            else:
                repairs.pop(key, None)  # no such list now: nothing of it to repair
        instructions = session.instructions if isinstance(session.instructions, str) else None
        return Definitions(
            capabilities=session.capabilities,
            instructions=instructions,
            repairs={key: n for key, n in repairs.items() if n},
            **fields,
        )


async def list_all(session: UpstreamSession, method: str, key: str, timeout: float) -> Checked:
    """Every item of one list, following the backend's cursors (bounded by MAX_PAGES), as a
    typed client can read it (`wellformed`), and how many items needed repair."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        reply = await session.request(method, {"cursor": cursor} if cursor else None, timeout)
        result = reply.get("result")
        if not isinstance(result, dict):
            if error_of(reply).get("code") == -32601:
                return Checked((), 0)  # advertised but not implemented: treat as empty
            raise BackendUnavailable(session.server, f"{method} failed: {reply.get('error')}")
        listed = result.get(key)
        if isinstance(listed, list):
            items.extend(listed)
        cursor = result.get("nextCursor")
        if not cursor or not isinstance(cursor, str):
            break
    return wellformed(session.server, key, items)
