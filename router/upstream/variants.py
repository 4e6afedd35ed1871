"""Extra upstream sessions to one HTTP backend (Streamable HTTP or HTTP+SSE), each with
capabilities of its own.

The backend's main session is shared by every client and declares what the router can relay.
Some legacy backends need more: they decide what to offer from the capabilities the session
declared, and they ask their client things outside any call (roots `list` after a
`roots/list_changed`, say), which only makes sense if "their client" is one client. For such a
client the router opens a session of its own (a variant) that declares that client's
capabilities (those a server tailors to, as `base.declared` keeps them: no experimental data)
and whose stray messages go to a handler for that client. Variants live as long as the backend's
connection, or until `drop(key)`; they are keyed by an opaque string (`leases.py` uses the
client's session id), so this layer knows nothing of clients.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from router.errors import BackendError, SessionExpired
from router.upstream.base import Channel, Message, Outside, declared
from router.upstream.session import UpstreamSession

log = logging.getLogger("toolmesh.upstream")


@dataclass(eq=False)
class Variant:
    session: UpstreamSession
    channel: Channel
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class Variants:
    def __init__(self, server: str, make_channel: Callable[[], Channel], connect_timeout: float) -> None:
        self.server = server
        self.make_channel = make_channel  # a new connection to the backend, as the main session's
        self.connect_timeout = connect_timeout
        self._variants: dict[str, Variant] = {}
        self._lock = anyio.Lock()
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup) -> None:
        """The backend's connection (re)started: variants run in its task group from now on."""
        self._tg = tg
        self._variants.clear()  # their tasks were cancelled with the previous connection

    def __len__(self) -> int:
        return len(self._variants)

    async def get(self, key: str, capabilities: Mapping[str, Any], outside: Outside) -> UpstreamSession:
        """The session kept under `key` (opened on first use); what the backend asks or says on it
        outside any call goes to `outside`, and its answer back on that session."""
        variant = self._variants.get(key)
        if variant is not None:
            return variant.session
        async with self._lock:
            variant = self._variants.get(key)
            if variant is None:
                variant = await self._open(capabilities, outside)
                self._variants[key] = variant
        return variant.session

    async def _open(self, capabilities: Mapping[str, Any], outside: Outside) -> Variant:
        tg = self._tg
        if tg is None:
            raise RuntimeError("variants used before the backend connected")
        channel = self.make_channel()
        session = UpstreamSession(
            self.server,
            channel,
            protocol="legacy",
            capabilities=declared(capabilities),
            connect_timeout=self.connect_timeout,
        )

        async def stray(message: Message) -> None:
            reply = await outside(message)
            if reply is not None:
                await session.respond(message["id"], reply)

        channel.on_unsolicited = stray
        await channel.open(tg)
        try:
            await session.connect()
        except BaseException:
            await channel.close()
            raise
        variant = Variant(session, channel)

        async def listen() -> None:
            with variant.scope:
                with contextlib.suppress(BackendError, SessionExpired):
                    await channel.listen(session.headers_for("GET"))
                if (
                    not channel.alive
                ):  # its connection ended (an HTTP+SSE stream): the next call opens another
                    self._forget(variant)
                    return
                await anyio.sleep_forever()  # no GET stream offered: stay until dropped

        tg.start_soon(listen)
        log.info("opened a client's own upstream session", extra={"server": self.server})
        return variant

    def _forget(self, variant: Variant) -> None:
        for key, kept in list(self._variants.items()):
            if kept is variant:
                del self._variants[key]

    async def drop(self, key: str) -> None:
        variant = self._variants.pop(key, None)
        if variant is None:
            return
        variant.scope.cancel()
        with anyio.CancelScope(shield=True):
            await variant.session.close()
            await variant.channel.close()

    async def drop_all(self) -> None:
        for key in list(self._variants):
            await self.drop(key)
