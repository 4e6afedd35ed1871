"""The era a backend's shared session does not speak, for a backend that speaks both.

Under `protocol: auto` a backend is first spoken to in one era: an HTTP backend is asked
`server/discover` (2026-07-28), a stdio child is offered `initialize` (legacy). Many servers, the
SDKs' among them, speak both, and what they do depends on the era they are spoken to in: a tool
written in the 2025 style asks its client mid-call on the session's back-channel, which the
stateless era does not have; one written in the 2026 style returns an input-required result,
which a 2025 session does not carry. So a backend that speaks both is spoken to in the era of the
client making the request (`leases.py`), and bridging (`relay/era_bridge.py`, the relay's asker)
is only for backends that speak one.

`OtherEra` learns whether the backend speaks the other era, and holds the session that serves its
clients (shared by them; a legacy client that declared sampling, elicitation or roots still gets
its own session or child from `leases.py`):

- over HTTP, a legacy session on a connection of its own, opened as soon as the shared session is
  up (a second `initialize` costs one round trip);
- over stdio, a child asked `server/discover` first (a dual-era child locks to the first era it
  hears), started when the first 2026-07-28 client calls (a child costs a process) and only if
  the backend may have children at all (`stdio_variants` > 0). One child serves every 2026-07-28
  client: their requests carry their own capabilities.

A call of the other era that comes while the answer is pending waits for it (a child has the
connect timeout to start and answer `server/discover`, so a stdio server that never answers an
unknown method costs its first 2026-07-28 caller that long, once per connection). Lists and the
index come from the shared session only: a server offers the same definitions in both eras (the
router declares the same capabilities in both), and one listing halves the refetching on every
`list_changed`. Whatever the other session hears outside a call
(list changes, resource updates) takes the same path as the shared session's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from router.eras import LEGACY, MODERN, MODERN_VERSION, Era, is_modern
from router.errors import METHOD_NOT_FOUND, BackendError, SessionExpired
from router.upstream.base import Channel, Message
from router.upstream.session import UpstreamSession
from router.upstream.stdio import StdioChannel

log = logging.getLogger("toolmesh.upstream")

ChannelFactory = Callable[[], Channel]


class OtherEra:
    def __init__(
        self,
        server: str,
        capabilities: Mapping[str, Any],
        connect_timeout: float,
        on_unsolicited: Callable[[Message], Awaitable[None]],
        on_exit: Callable[[str], None],
    ) -> None:
        self.server = server
        self.capabilities = dict(capabilities)
        self.connect_timeout = connect_timeout
        self.on_unsolicited = on_unsolicited
        self.on_exit = on_exit  # the other child exited: the backend reconnects as for its main one
        self.session: UpstreamSession | None = None
        self.eras: frozenset[Era] = frozenset()
        self._main: UpstreamSession | None = None
        self._known = anyio.Event()
        self._ask_later: Callable[[], None] | None = None

    def start(self, main: UpstreamSession, tg: TaskGroup, make_channel: ChannelFactory | None) -> None:
        """The shared session `main` is up: learn the other era now (HTTP), when first wanted
        (stdio), or not at all (`make_channel` None: the backend's era is pinned, or over stdio it
        may have no children)."""
        self.session, self._main, self.eras = None, main, frozenset({main.era})
        self._known = anyio.Event()
        self._ask_later = None
        if make_channel is None:
            self._known.set()
            return

        def ask() -> None:
            tg.start_soon(self._ask, main, tg, make_channel)

        if isinstance(main.channel, StdioChannel):
            self._ask_later = ask
        else:
            ask()

    async def session_for(self, era: Era) -> UpstreamSession | None:
        """The session that serves clients of `era`, if the backend speaks it and it is not the
        shared one's; asks the backend first if nobody has yet."""
        if not self.settled(era):
            await self.known()
        return self.session_now(era)

    def settled(self, era: Era) -> bool:
        """Whether `session_now(era)` is the answer already (no need to ask the backend)."""
        return era in self.eras or self._known.is_set()

    def session_now(self, era: Era) -> UpstreamSession | None:
        session = self.session
        return session if session is not None and session.era == era else None

    async def known(self) -> frozenset[Era]:
        """The eras the backend speaks, once it has been asked (asking is bounded by the
        connect timeout; a start that exceeds it too leaves the call bridged)."""
        if self._ask_later is not None:
            ask, self._ask_later = self._ask_later, None
            ask()
        with anyio.move_on_after(2 * self.connect_timeout):
            await self._known.wait()
        return self.eras

    async def _ask(self, main: UpstreamSession, tg: TaskGroup, make_channel: ChannelFactory) -> None:
        try:
            await self._open(main, tg, make_channel)
        finally:
            self._known.set()

    async def _open(self, main: UpstreamSession, tg: TaskGroup, make_channel: ChannelFactory) -> None:
        channel = make_channel()
        session = UpstreamSession(
            self.server,
            channel,
            protocol="legacy" if is_modern(main.era) else MODERN_VERSION,
            capabilities=self.capabilities,
            connect_timeout=self.connect_timeout,
            # A child asked server/discover has to start first (seconds for a Python server
            # under load), so it has the whole connect timeout to answer, not a probe's 3 s.
            probe_timeout=self.connect_timeout,
        )

        async def outside(message: Message) -> None:
            """What the other session hears outside any call; a request is answered on it."""
            method = message.get("method")
            if "id" not in message or method is None:
                await self.on_unsolicited(message)
            elif method == "ping":
                await session.respond(message["id"], {"result": {}})
            else:
                error = {"code": METHOD_NOT_FOUND, "message": f"{method} outside a call is not relayed"}
                await session.respond(message["id"], {"error": error})

        channel.on_unsolicited = outside
        try:
            await channel.open(tg)
            await session.connect()
        except (BackendError, SessionExpired, OSError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, BackendError) else str(exc) or type(exc).__name__
            log.info(
                "backend speaks one era", extra={"server": self.server, "era": main.era, "reason": reason}
            )
            with anyio.CancelScope(shield=True):
                await channel.close()
            return
        self.session = session
        self.eras = frozenset({main.era, session.era})
        log.info("backend speaks both eras", extra={"server": self.server})
        if isinstance(channel, StdioChannel):
            tg.start_soon(self._watch, channel)
        else:
            tg.start_soon(self._listen, channel, session)

    async def _listen(self, channel: Channel, session: UpstreamSession) -> None:
        """The other (legacy) session's GET stream: what the backend says to its clients there."""
        with contextlib.suppress(BackendError, SessionExpired):
            await channel.listen(session.headers_for("GET"))

    async def _watch(self, channel: StdioChannel) -> None:
        await channel.exited.wait()
        self.on_exit("the child serving 2026-07-28 clients exited")

    async def close(self) -> None:
        """The backend's connection ended: the other session goes with it."""
        session, self.session, self._main = self.session, None, None
        self.eras, self._ask_later = frozenset(), None
        self._known.set()  # nobody waits for an answer that will not come
        if session is not None:
            with anyio.CancelScope(shield=True):
                await session.close()
                await session.channel.close()

    def report(self) -> dict[str, Any]:
        """For /readyz and /admin/: the versions the backend speaks, the one its lists come from,
        and what the router speaks to it for clients of each era (a bridge where not theirs)."""
        main = self._main
        if main is None:
            return {}
        versions = {s.era: s.protocol_version for s in (main, self.session) if s is not None}
        report: dict[str, Any] = {
            "speaks": sorted(versions.values()),
            "lists": main.protocol_version,
            "for_clients": {
                era: versions.get(era) or f"bridged to {main.protocol_version}" for era in (LEGACY, MODERN)
            },
        }
        if self._ask_later is not None:
            report["other_era"] = "asked when its first client comes"
        elif not self._known.is_set():
            report["other_era"] = "being asked"
        return report
