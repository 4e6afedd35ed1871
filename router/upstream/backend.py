"""One backend instance over its whole life: connect, learn its definitions, serve, reconnect.

`run()` is the instance's supervisor. It opens a channel, negotiates a session, fetches every
list the backend offers (`listing.py`), then serves calls until the channel is lost, and starts
over with exponential backoff. No router restart is ever needed: a stdio child that dies is
started again, an HTTP server that comes back is re-initialized. While it is down, calls fail at
once with the reason and the time of the next attempt; they never wait for a timeout.

A call goes on a lease (`lease_for`, `leases.py`): the shared session, or a session the backend
lends one client (an HTTP variant, a stdio child). Subscriptions and listen streams toward the
backend are `subscriptions.py`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
from anyio.abc import TaskGroup

from router.catalog.index import Definitions
from router.catalog.record import BackendRecord, UpstreamProtocol
from router.eras import LEGACY, MODERN_VERSION, Era, is_modern
from router.errors import BackendError, BackendUnreachable, SessionExpired
from router.upstream.base import Channel, Message, MessageHandler
from router.upstream.children import Children
from router.upstream.http import HttpChannel
from router.upstream.leases import Client, Lease, Leases
from router.upstream.listing import Listing
from router.upstream.other_era import OtherEra
from router.upstream.session import UpstreamSession
from router.upstream.stdio import StdioChannel
from router.upstream.subscriptions import Subscriptions
from router.upstream.variants import Variants

if TYPE_CHECKING:
    from router.upstream.sse_channel import SseChannel

log = logging.getLogger("toolmesh.upstream")

State = Literal["connecting", "ready", "down"]

# What the router declares upstream on its shared sessions: everything it can relay to a client
# (each request is still only relayed to a client that declared the capability itself).
RELAY_CAPABILITIES: dict[str, Any] = {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}}
# A call's handler for what the backend sends during it, given the lease the call runs on.
HandlerFor = Callable[[Lease], MessageHandler | None]


STARTING_MAX = 8  # a stdio child's handshake wait grows to at most this many connect timeouts


def _timed_out(group: BaseExceptionGroup[Any]) -> bool:
    """Whether a failed connect ran out of time (the child was still starting), rather than
    being refused or the child exiting."""
    return isinstance(group.exceptions[0], TimeoutError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BackendError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "no answer within the connect timeout"
    return str(exc) or type(exc).__name__


class Backend:
    def __init__(
        self,
        record: BackendRecord,
        *,
        request_timeout: float,
        connect_timeout: float,
        reconnect_min: float,
        reconnect_max: float,
        protocol: UpstreamProtocol,
        on_change: Callable[[Backend], None],
        on_notification: Callable[[Backend, Message], Awaitable[None]] | None = None,
        stdio_variants: int = 0,
        stdio_variant_idle: float = 120.0,
        identity: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        """`identity` makes the headers with the router's own identity token for this backend's
        requests that are not an agent's call (with `identity` in its catalog entry)."""
        self.record = record
        self.identity = identity
        self.server = record.server
        self.timeout = record.timeout or request_timeout
        self.connect_timeout = connect_timeout
        # A stdio child's time to start and answer its handshake: connect_timeout, doubled after
        # each attempt the child was still starting when it ran out (up to STARTING_MAX times),
        # and back to connect_timeout once it answers. Forty children started at once on two
        # cores take longer than any one does alone; a restart at a fixed deadline threw their
        # start away each time, and the slowest never came up.
        self.handshake_timeout = connect_timeout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.protocol = record.protocol or protocol
        # What a stdio child told us of its era when asked `auto` (see `_learn_era`).
        self._learned_protocol: UpstreamProtocol | None = None
        self._retry_at_once = False
        self.on_change = on_change
        self.on_notification = on_notification
        self.state: State = "connecting"
        self.last_error: str | None = None
        self.retry_at = 0.0
        self.listing = Listing(self.server, self.timeout, lambda: self.on_change(self))
        self.session: UpstreamSession | None = None
        self.first_attempt = anyio.Event()
        self._lost = anyio.Event()
        self.subscriptions = Subscriptions(self.server, self.timeout)
        # Sessions lent to one client: their own HTTP sessions (legacy HTTP backends), or children
        # declaring their capabilities (stdio backends); see router.upstream.leases.
        variants = (
            Variants(self.server, self._make_channel, connect_timeout)
            if record.transport != "stdio" and record.url is not None
            else None
        )
        children = (
            Children(
                self.server,
                self._make_stdio_channel,
                protocol=self.protocol,
                connect_timeout=connect_timeout,
                limit=stdio_variants,
                idle_timeout=stdio_variant_idle,
                backoff_min=reconnect_min,
                backoff_max=reconnect_max,
            )
            if record.transport == "stdio" and stdio_variants > 0
            else None
        )
        self.leases = Leases(variants, children)
        # The era the shared session does not speak, for a backend that speaks both (other_era.py).
        self.other_era = OtherEra(
            self.server, RELAY_CAPABILITIES, connect_timeout, self.on_unsolicited, self.lose
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Supervise the instance until cancelled."""
        delay = self.reconnect_min
        while True:
            started = time.monotonic()
            await self._serve_once()
            if self._retry_at_once:  # no failure of the backend's: we asked the wrong question
                self._retry_at_once = False
                continue
            if time.monotonic() - started > self.reconnect_max:
                delay = self.reconnect_min  # it was up for a while: a fresh failure, start small
            wait = delay * (0.8 + 0.4 * random.random())
            self.retry_at = time.monotonic() + wait
            await anyio.sleep(wait)
            delay = min(delay * 2, self.reconnect_max)

    async def _serve_once(self) -> None:
        channel = self._make_channel()
        channel.on_unsolicited = self.on_unsolicited
        self._lost = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                await self._connect(channel, tg)
                await self._lost.wait()
                tg.cancel_scope.cancel()
        except* (BackendError, SessionExpired, TimeoutError, OSError) as group:
            if self.session is None and isinstance(channel, StdioChannel) and _timed_out(group):
                self.handshake_timeout = min(self.handshake_timeout * 2, self.connect_timeout * STARTING_MAX)
            if self._retry_at_once:
                log.info(
                    "backend speaks 2026-07-28 only; asking a fresh child", extra={"server": self.server}
                )
            else:
                self._went_down(_reason(group.exceptions[0]))
        except* Exception as group:  # a bug must not take the router down with it
            log.error(
                "backend supervisor failed", extra={"server": self.server}, exc_info=group.exceptions[0]
            )
            self._went_down(f"internal error: {group.exceptions[0]!r}")
        finally:
            ended, self.session = self.session, None
            with anyio.CancelScope(shield=True):
                await self.other_era.close()
                await self.leases.close_all()
                if ended is not None:
                    await ended.close()
                await channel.close()
            if self.state == "ready":
                self._set_state("down", self.last_error or "connection lost")

    async def _connect(self, channel: Channel, tg: TaskGroup) -> None:
        self.state = "connecting"
        await channel.open(tg)
        self.leases.attach(tg)
        # HTTP+SSE is a 2024-11-05 transport: only the legacy handshake makes sense on it.
        protocol = "legacy" if self.record.transport == "sse" else self._learned_protocol or self.protocol
        stdio = isinstance(channel, StdioChannel)
        # A stdio child learned to speak 2026-07-28 only is asked server/discover first: that is
        # the first message the fresh process gets, so it has the connect timeout to start and
        # answer, as `initialize` has (under load a Python server's start alone outlasted the
        # 3 s probe, and the backend went down instead of connecting).
        wait = self.handshake_timeout if stdio else self.connect_timeout
        probe = {"probe_timeout": wait} if stdio and protocol == MODERN_VERSION else {}
        session = UpstreamSession(
            self.server,
            channel,
            protocol=protocol,
            capabilities=RELAY_CAPABILITIES,
            connect_timeout=wait,
            prefer_legacy=stdio,
            **probe,
        )
        try:
            await session.connect()
        except BackendError:
            self._learn_era(session)
            raise
        self.session = session
        self.handshake_timeout = self.connect_timeout
        await self.listing.fetch_all(session)
        self.other_era.start(session, tg, self._other_era_channel(session))
        self._set_state("ready", None)
        log.info(
            "backend ready",
            extra={"server": self.server, "era": session.era, "version": session.protocol_version},
        )
        tg.start_soon(self._listen, channel, session)
        tg.start_soon(self.listing.refetch, session)
        if isinstance(channel, StdioChannel):
            tg.start_soon(self._watch_process, channel)
        elif self.record.transport == "sse":
            tg.start_soon(self._watch_stream, cast("SseChannel", channel))
        if self.leases.children is not None:
            tg.start_soon(self.leases.children.reap)

    def _learn_era(self, session: UpstreamSession) -> None:
        """After a failed handshake under `auto`: a child that refused `initialize` for its
        version speaks 2026-07-28 only, and may refuse `server/discover` after that (the SDK's
        server holds to the era it refused), so a fresh child is asked `server/discover` at
        once. A child that fails under what we learned goes back to `auto`: it may have changed."""
        if self.protocol != "auto" or not isinstance(session.channel, StdioChannel):
            return  # an HTTP backend is asked server/discover first anyway
        if self._learned_protocol is not None:
            self._learned_protocol = None
        elif session.refused_legacy:
            self._learned_protocol = MODERN_VERSION
            self._retry_at_once = True

    def _other_era_channel(self, main: UpstreamSession) -> Callable[[], Channel] | None:
        """How to reach the backend in the era `main` does not speak, if it is worth asking:
        under `auto` only, when the era asked first answered (the other one was not tried yet),
        and over stdio only where the backend may have children."""
        if self.protocol != "auto" or self._learned_protocol is not None:
            return None
        if isinstance(main.channel, StdioChannel):
            asked_first = not is_modern(main.era) and self.leases.children is not None
            return self._make_stdio_channel if asked_first else None
        return self._make_channel if is_modern(main.era) else None

    def _went_down(self, reason: str) -> None:
        self._set_state("down", reason)
        log.warning("backend unavailable", extra={"server": self.server, "reason": reason})

    def _make_channel(self) -> Channel:
        """The record's transport decides: stdio, Streamable HTTP, or HTTP+SSE (imported only
        when a backend speaks it)."""
        record = self.record
        if record.transport == "stdio":
            return self._make_stdio_channel()
        assert record.url is not None
        if record.transport == "sse":
            from router.upstream.sse_channel import SseChannel

            return SseChannel(self.server, record.url, dict(record.headers), self.connect_timeout)
        return HttpChannel(self.server, record.url, dict(record.headers), self.connect_timeout, self.identity)

    def _make_stdio_channel(self) -> StdioChannel:
        record = self.record
        assert record.command is not None
        return StdioChannel(self.server, record.command, record.args, dict(record.env), record.cwd)

    def _set_state(self, state: State, error: str | None) -> None:
        changed = state != self.state
        self.state, self.last_error = state, error
        if state != "connecting":
            self.first_attempt.set()
        if changed:
            self.on_change(self)

    def lose(self, reason: str) -> None:
        """Drop the connection and let `run()` reconnect (e.g. after a refused request)."""
        if self.state == "ready":
            self.last_error = reason
            self._lost.set()

    async def _watch_process(self, channel: StdioChannel) -> None:
        await channel.exited.wait()
        self.lose("the process exited")

    async def _watch_stream(self, channel: SseChannel) -> None:
        await channel.ended.wait()
        self.lose("its event stream ended")

    async def _listen(self, channel: Channel, session: UpstreamSession) -> None:
        if is_modern(session.era):
            await self.subscriptions.listen_modern(session, self.on_unsolicited)
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.subscriptions.sync_legacy, session)
            try:
                await channel.listen(session.headers_for("GET"))
            except SessionExpired:
                self.lose("the backend forgot our session")
            tg.cancel_scope.cancel()

    def set_subscriptions(self, uris: frozenset[str]) -> None:
        """The upstream URIs clients want updates of now; applied in the background."""
        self.subscriptions.want(uris)

    # -- traffic ------------------------------------------------------------------------------

    @property
    def era(self) -> Era:
        """The era the shared upstream session speaks (the one lists come from)."""
        return self.session.era if self.session is not None else LEGACY

    @asynccontextmanager
    async def lease_for(self, client: Client | None) -> AsyncIterator[Lease]:
        """The upstream session that serves `client` for one call (see router.upstream.leases);
        None: no client in particular (the shared session). Fails at once, naming the server and
        the next retry, while the instance is down."""
        session = self.session
        if session is None or self.state != "ready":
            raise BackendUnreachable(self.server, self._down_reason())
        if client is not None and client.era != session.era:
            # A backend that speaks the client's era too is spoken to in it (other_era.py).
            session = await self.other_era.session_for(client.era) or session
        async with self.leases.lease(self, session, client) as lease:
            yield lease

    def _lease_at_once(self, client: Client | None) -> Lease | None:
        """The lease `lease_for(client)` would give when it needs no waiting and no cleanup
        (a shared session: the same decision, taken without an async context per call); None
        when the client gets a session or child of its own, or the other era is not known yet."""
        session = self.session
        if session is None or self.state != "ready":
            raise BackendUnreachable(self.server, self._down_reason())
        if client is not None and client.era != session.era:
            if not self.other_era.settled(client.era):
                return None
            session = self.other_era.session_now(client.era) or session
        return Lease(self, session, "shared") if self.leases.shared_serves(session, client) else None

    async def speaks(self, era: Era) -> bool:
        """Whether this instance speaks `era` (asking it first if nobody has yet)."""
        session = self.session
        if session is not None and session.era == era:
            return True
        return era in await self.other_era.known()

    def eras_in_use(self) -> dict[str, Any]:
        """For /readyz and /admin/: which eras it speaks, and which the router uses for whom."""
        return self.other_era.report()

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        handler_for: HandlerFor | None = None,
        *,
        client: Client | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        param_headers: Mapping[str, str] | None = None,
    ) -> Message:
        """One request on a lease for `client`; `handler_for(lease)` gives the handler for what the
        backend sends during it (answers to its questions go on that lease). `headers` go with
        this request only (trace context, forwarded identity; HTTP only); `timeout` (a tool's own)
        overrides the instance's; `param_headers` (a 2026-07-28 client's `Mcp-Param-*`) go only to
        2026-07-28 backends."""
        lease = self._lease_at_once(client)
        if lease is not None:  # the common case, without entering lease_for's context
            return await lease.request(
                method,
                params,
                timeout or self.timeout,
                handler_for(lease) if handler_for is not None else None,
                headers=headers,
                param_headers=param_headers,
                client=client,
            )
        for attempt in range(2):
            async with self.lease_for(client) as lease:
                on_message = handler_for(lease) if handler_for is not None else None
                try:
                    return await lease.request(
                        method,
                        params,
                        timeout or self.timeout,
                        on_message,
                        headers=headers,
                        param_headers=param_headers,
                        client=client,
                    )
                except BackendUnreachable:
                    # A child that died before the request reached it: another child takes it.
                    if attempt or not lease.replaceable:
                        raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def forget_client(self, session_id: str) -> None:
        """A client's session ended: close what this backend lent it."""
        await self.leases.forget(session_id)

    def _down_reason(self) -> str:
        reason = self.last_error or "not connected yet"
        wait = self.retry_at - time.monotonic()
        return f"{reason}; retrying in {wait:.1f} s" if wait > 0 else f"{reason}; reconnecting"

    # -- definitions --------------------------------------------------------------------------

    @property
    def definitions(self) -> Definitions | None:
        return self.listing.definitions

    async def on_unsolicited(self, message: Message) -> None:
        """What the backend says to everyone (list_changed, resource updates), wherever it came."""
        method = message.get("method")
        if isinstance(method, str) and self.listing.heard(method):
            return
        if "id" in message and method is not None:
            await self.answer_request(message)
        elif self.on_notification is not None and method is not None:
            await self.on_notification(self, message)

    def refresh(self) -> None:
        """Refetch every list soon, as if the backend had announced a change another replica heard."""
        if self.state == "ready":
            self.listing.refresh()

    def take_announced(self) -> set[str]:
        """The list_changed notifications received since the last call, once refetched."""
        return self.listing.take_announced()

    async def answer_request(self, message: Message) -> None:
        """A request the backend sent outside any call: ping is answered, the rest refused (no
        client to ask: the upstream session is shared by all of them)."""
        if self.session is not None:
            await Lease(self, self.session, "shared").answer_outside_call(message)
