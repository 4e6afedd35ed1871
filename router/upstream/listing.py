"""A backend's definitions: every list it offers, fetched whole and refetched when it says so.

The lists are fetched once per connection (following the backend's cursors) and again when the
backend announces a change (`notifications/*/list_changed`) or another replica heard one
(`refresh`). Bursts of announcements coalesce into one refetch per list.

A list the backend answers with an error (a CMS server whose `resources/list` needs the CMS it
cannot reach, while its tools list fine) is left out, not the backend: its other lists are
served, the refused one keeps what it last listed (nothing, at first) and is asked again after
REFUSED_RETRY seconds, doubling up to REFUSED_RETRY_MAX. Only a backend that refuses every list it
offers on connecting is unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
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
REFUSED_RETRY = 2.0  # seconds before a refused list is asked again; doubles each time it is refused
REFUSED_RETRY_MAX = 60.0


class ListRefused(BackendUnavailable):
    """The backend answered a list request with an error (other than "method not found")."""


def _offered(session: UpstreamSession, methods: Iterable[str]) -> set[str]:
    """The list `methods` whose capability the backend declared."""
    return {method for method in methods if LISTS[method][0] in session.capabilities}


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
        self._refused: set[str] = set()  # lists the backend last answered with an error
        self._retry_in = REFUSED_RETRY

    async def fetch_all(self, session: UpstreamSession) -> Definitions:
        """Every list, on a fresh connection; BackendUnavailable if the backend refuses them all."""
        self._refused.clear()
        self._retry_in = REFUSED_RETRY
        offered = _offered(session, LISTS)
        definitions, refused = await self._fetch(session, set(LISTS))
        if refused and len(refused) == len(offered):
            raise next(iter(refused.values()))
        self._note(offered, refused)
        self.definitions = definitions
        return definitions

    @property
    def refused(self) -> tuple[str, ...]:
        """The lists the backend last refused (left out until it serves them again)."""
        return tuple(sorted(self._refused))

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
            if self._refused:
                with anyio.move_on_after(self._retry_in):
                    await self._wanted.wait()
                if not self._wanted.is_set():  # time to ask for the refused lists again
                    self._dirty |= self._refused
                    self._retry_in = min(self._retry_in * 2, REFUSED_RETRY_MAX)
            else:
                await self._wanted.wait()
            self._wanted = anyio.Event()
            methods, self._dirty = self._dirty, set()
            if not methods:
                continue
            try:
                self.definitions, refused = await self._fetch(session, methods)
            except BackendError as exc:
                log.warning(
                    "refreshing definitions failed", extra={"server": self.server, "reason": exc.message}
                )
                continue
            offered = _offered(session, methods)
            self._note(offered, refused)
            if not offered or len(refused) < len(offered):  # a list came, or one went away
                self.on_refetched()

    def _note(self, asked: set[str], refused: dict[str, ListRefused]) -> None:
        """Remember which of the lists `asked` for were refused: warn when one is first refused,
        say when one is served again, and start the retry delay over once none is refused."""
        for method in sorted(asked):
            exc = refused.get(method)
            if exc is not None and method not in self._refused:
                self._refused.add(method)
                log.warning(
                    "a list the backend refused is left out, and asked for again later",
                    extra={"server": self.server, "method": method, "reason": exc.message},
                )
            elif exc is None and method in self._refused:
                self._refused.discard(method)
                log.info("a refused list is served again", extra={"server": self.server, "method": method})
        if not self._refused:
            self._retry_in = REFUSED_RETRY

    async def _fetch(
        self, session: UpstreamSession, methods: set[str]
    ) -> tuple[Definitions, dict[str, ListRefused]]:
        """The definitions with `methods` fetched again, and the lists among them the backend
        refused (each keeps its last items)."""
        current = self.definitions or Definitions()
        fields: dict[str, Any] = {
            "tools": current.tools,
            "prompts": current.prompts,
            "resources": current.resources,
            "resource_templates": current.resource_templates,
        }
        repairs = dict(current.repairs)
        refused: dict[str, ListRefused] = {}
        for method in sorted(methods):  # in one order: the repair counts are shown in it
            capability, key, field = LISTS[method]
            if capability not in session.capabilities:
                repairs.pop(key, None)  # no such list now: nothing of it to repair
                continue
            try:
                fields[field], repairs[key] = await list_all(session, method, key, self.timeout)
            except ListRefused as exc:
                refused[method] = exc
        instructions = session.instructions if isinstance(session.instructions, str) else None
        definitions = Definitions(
            capabilities=session.capabilities,
            instructions=instructions,
            repairs={key: n for key, n in repairs.items() if n},
            **fields,
        )
        return definitions, refused


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
            raise ListRefused(session.server, f"{method} failed: {reply.get('error')}")
        listed = result.get(key)
        if isinstance(listed, list):
            items.extend(listed)
        cursor = result.get("nextCursor")
        if not cursor or not isinstance(cursor, str):
            break
    return wellformed(session.server, key, items)
