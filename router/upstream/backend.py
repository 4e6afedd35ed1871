"""One backend instance over its whole life: connect, learn its definitions, serve, reconnect.

`run()` is the instance's supervisor. It opens a channel, negotiates a session, fetches every
list the backend offers (following its cursors), then serves calls until the channel is lost,
and starts over with exponential backoff. No router restart is ever needed: a stdio child that
dies is started again, an HTTP server that comes back is re-initialized. While it is down, calls
fail at once with the reason and the time of the next attempt; they never wait for a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup

from router.catalog.index import Definitions
from router.catalog.record import BackendRecord, UpstreamProtocol
from router.eras import LEGACY, MODERN_VERSION, Era, is_modern
from router.errors import BackendError, BackendUnavailable, BackendUnreachable, SessionExpired
from router.upstream.base import Channel, Message, MessageHandler
from router.upstream.children import Children, ChildSpec
from router.upstream.http import HttpChannel
from router.upstream.session import UpstreamSession
from router.upstream.stdio import StdioChannel
from router.upstream.variants import Variants, VariantSpec

log = logging.getLogger("toolmesh.upstream")

State = Literal["connecting", "ready", "down"]

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
# What the router declares upstream on its shared sessions: everything it can relay to a client
# (each request is still only relayed to a client that declared the capability itself).
RELAY_CAPABILITIES: dict[str, Any] = {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}}
LIST_FLAGS = {
    "tools": "toolsListChanged",
    "prompts": "promptsListChanged",
    "resources": "resourcesListChanged",
}


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


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
    ) -> None:
        self.record = record
        self.server = record.server
        self.timeout = record.timeout or request_timeout
        self.connect_timeout = connect_timeout
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
        self.definitions: Definitions | None = None
        self.session: UpstreamSession | None = None
        self.first_attempt = anyio.Event()
        self._lost = anyio.Event()
        self._dirty: set[str] = set()
        self._refresh_wanted = anyio.Event()
        # Upstream resource URIs some client subscribed to; kept subscribed on every (re)connect.
        self.subscriptions: frozenset[str] = frozenset()
        self._announced: set[str] = set()
        # Per-client sessions, for legacy HTTP backends only (a stdio child has one session).
        self.variants: Variants | None = (
            Variants(self.server, record.url, dict(record.headers), connect_timeout)
            if record.transport != "stdio" and record.url is not None
            else None
        )
        # Per-capability-set children, for stdio backends (see router.upstream.children).
        self.children: Children | None = (
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
        self._subscriptions_changed = anyio.Event()

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
                if self.variants is not None:
                    await self.variants.drop_all()
                if self.children is not None:
                    await self.children.close_all()
                if ended is not None:
                    await ended.close()
                await channel.close()
            if self.state == "ready":
                self._set_state("down", self.last_error or "connection lost")

    async def _connect(self, channel: Channel, tg: TaskGroup) -> None:
        self.state = "connecting"
        await channel.open(tg)
        if self.variants is not None:
            self.variants.attach(tg)
        if self.children is not None:
            self.children.attach(tg)
        session = UpstreamSession(
            self.server,
            channel,
            protocol=self._learned_protocol or self.protocol,
            capabilities=RELAY_CAPABILITIES,
            connect_timeout=self.connect_timeout,
            prefer_legacy=isinstance(channel, StdioChannel),
        )
        try:
            await session.connect()
        except BackendError:
            self._learn_era(session)
            raise
        self.session = session
        self.definitions = await self._fetch(set(LISTS))
        self._set_state("ready", None)
        log.info(
            "backend ready",
            extra={"server": self.server, "era": session.era, "version": session.protocol_version},
        )
        tg.start_soon(self._listen, channel, session)
        tg.start_soon(self._refresher)
        if isinstance(channel, StdioChannel):
            tg.start_soon(self._watch_process, channel)
        if self.children is not None:
            tg.start_soon(self.children.reap)

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

    def _went_down(self, reason: str) -> None:
        self._set_state("down", reason)
        log.warning("backend unavailable", extra={"server": self.server, "reason": reason})

    def _make_channel(self) -> Channel:
        record = self.record
        if record.transport == "stdio":
            return self._make_stdio_channel()
        assert record.url is not None
        return HttpChannel(self.server, record.url, dict(record.headers), self.connect_timeout)

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

    async def _listen(self, channel: Channel, session: UpstreamSession) -> None:
        if is_modern(session.era):
            await self._listen_modern(session)
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._sync_legacy_subscriptions, session)
            try:
                await channel.listen(session.headers_for("GET"))
            except SessionExpired:
                self.lose("the backend forgot our session")
            tg.cancel_scope.cancel()

    # -- subscriptions ------------------------------------------------------------------------

    def set_subscriptions(self, uris: frozenset[str]) -> None:
        """The upstream URIs clients want updates of now; applied in the background."""
        if uris != self.subscriptions:
            self.subscriptions = uris
            self._subscriptions_changed.set()

    def _can_subscribe(self, session: UpstreamSession) -> bool:
        resources = session.capabilities.get("resources")
        return isinstance(resources, dict) and bool(resources.get("subscribe"))

    async def _sync_legacy_subscriptions(self, session: UpstreamSession) -> None:
        """resources/subscribe and unsubscribe upstream until the set matches what clients want."""
        applied: frozenset[str] = frozenset()
        while True:
            wanted = self.subscriptions if self._can_subscribe(session) else frozenset()
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
            self._subscriptions_changed = anyio.Event()
            if self.subscriptions != applied:
                continue
            await self._subscriptions_changed.wait()

    async def _listen_modern(self, session: UpstreamSession) -> None:
        """Hold a subscriptions/listen stream to a 2026-07-28 backend, re-opened when the resource
        URIs change or the stream drops; its events take the same path as legacy ones."""
        delay = 0.2
        while True:
            notifications: dict[str, Any] = {
                flag: True for kind, flag in LIST_FLAGS.items() if kind in session.capabilities
            }
            if self.subscriptions and self._can_subscribe(session):
                notifications["resourceSubscriptions"] = sorted(self.subscriptions)
            if not notifications:
                return
            changed = self._subscriptions_changed = anyio.Event()
            reply: Message | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_when, changed, tg.cancel_scope)
                try:
                    reply = await session.listen(notifications, self.on_unsolicited)
                except (BackendError, SessionExpired) as exc:
                    log.debug("listen stream dropped", extra={"server": self.server, "reason": str(exc)})
                tg.cancel_scope.cancel()
            if reply is not None and (reply.get("error") or {}).get("code") == -32601:
                return  # the backend has no listen streams
            if not changed.is_set():
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                delay = 0.2

    # -- traffic ------------------------------------------------------------------------------

    @property
    def era(self) -> Era:
        """The era the current upstream session speaks."""
        return self.session.era if self.session is not None else LEGACY

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        on_message: MessageHandler | None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        via: UpstreamSession | None = None,
        param_headers: Mapping[str, str] | None = None,
        child: ChildSpec | None = None,
    ) -> Message:
        """`headers` go with this request only (trace context, forwarded identity; HTTP only);
        `timeout` (a tool's own) overrides the instance's; `param_headers` (a 2026-07-28 client's
        `Mcp-Param-*`) go only to 2026-07-28 backends. The request goes on the shared session, or
        on `via` (a client's own, see `session_for`), or on a child leased for `child` (a client's
        capabilities, stdio backends)."""
        session = self.session
        if session is None or self.state != "ready":
            raise BackendUnreachable(self.server, self._down_reason())
        if child is not None and self.children is not None and not is_modern(session.era):
            for attempt in range(2):
                async with self.children.lease(child) as leased:
                    if child.on_lease is not None:
                        child.on_lease(leased)  # None: the main child, as for anyone else
                    if leased is None:
                        break
                    # A child that dies fails only its own calls (the pool starts another); if it
                    # died before the request reached it, another child takes the request.
                    try:
                        return await leased.request(
                            method, params, timeout or self.timeout, on_message, headers=headers
                        )
                    except BackendUnreachable:
                        if attempt or leased.channel.alive:
                            raise
        session = via or session
        try:
            return await session.request(
                method,
                params,
                timeout or self.timeout,
                on_message,
                headers=headers,
                param_headers=param_headers,
            )
        except BackendUnavailable as exc:
            if not session.channel.alive or isinstance(exc, BackendUnreachable):
                self.lose(exc.message)
            raise

    async def session_for(self, spec: VariantSpec) -> UpstreamSession | None:
        """A client's own session on a legacy HTTP backend (opened on first use); None where the
        shared session serves (stdio, 2026-07-28 backends, which read capabilities per request)."""
        session = self.session
        if self.variants is None or session is None or is_modern(session.era) or self.state != "ready":
            return None
        try:
            return await self.variants.get(spec.key, spec.capabilities, spec.on_message)
        except (BackendError, SessionExpired, OSError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, BackendError) else str(exc) or type(exc).__name__
            raise BackendUnavailable(
                self.server, f"cannot open a session for this client: {reason}"
            ) from None

    async def drop_session_for(self, key: str) -> None:
        if self.variants is not None:
            await self.variants.drop(key)
        if self.children is not None:
            await self.children.forget(key)

    def _down_reason(self) -> str:
        reason = self.last_error or "not connected yet"
        wait = self.retry_at - time.monotonic()
        return f"{reason}; retrying in {wait:.1f} s" if wait > 0 else f"{reason}; reconnecting"

    # -- definitions --------------------------------------------------------------------------

    async def _fetch(self, methods: set[str]) -> Definitions:
        session = self.session
        assert session is not None
        current = self.definitions or Definitions()
        fields: dict[str, Any] = {
            "tools": current.tools,
            "prompts": current.prompts,
            "resources": current.resources,
            "resource_templates": current.resource_templates,
        }
        for method in methods:
            capability, key, field = LISTS[method]
            if capability in session.capabilities:
                fields[field] = await self._list_all(session, method, key)
        return Definitions(capabilities=session.capabilities, **fields)

    async def _list_all(self, session: UpstreamSession, method: str, key: str) -> tuple[dict[str, Any], ...]:
        return await list_all(session, method, key, self.timeout)

    async def on_unsolicited(self, message: Message) -> None:
        """What the backend says to everyone (list_changed, resource updates), wherever it came."""
        method = message.get("method")
        if method in CHANGED:
            self._dirty.update(CHANGED[method])
            self._announced.add(method)
            self._refresh_wanted.set()
        elif "id" in message and method is not None:
            await self.answer_request(message)
        elif self.on_notification is not None and method is not None:
            await self.on_notification(self, message)

    def refresh(self) -> None:
        """Refetch every list soon, as if the backend had announced a change another replica heard."""
        if self.state == "ready":
            self._dirty.update(LISTS)
            self._refresh_wanted.set()

    def take_announced(self) -> set[str]:
        """The list_changed notifications received since the last call, once refetched."""
        if self._dirty:
            return set()  # not refetched yet: announce with the rebuild that follows the refetch
        announced, self._announced = self._announced, set()
        return announced

    async def answer_request(self, message: Message) -> None:
        """A request the backend sent outside any call: ping is answered, the rest refused (no
        client to ask: the upstream session is shared by all of them)."""
        if message["method"] == "ping":
            await self.respond(message["id"], {"result": {}})
        else:
            error = {"code": -32601, "message": f"{message['method']} outside a call is not relayed"}
            await self.respond(message["id"], {"error": error})

    async def respond(self, request_id: Any, reply: Message, session: UpstreamSession | None = None) -> None:
        """Send the answer (`{"result": ...}` or `{"error": ...}`) to a request the backend sent
        (on `session` if it came on a variant)."""
        session = session or self.session
        if session is None:
            return
        message: Message = {"jsonrpc": "2.0", "id": request_id, **reply}
        with contextlib.suppress(BackendError, SessionExpired):
            await session.channel.notify(message, session.headers_for("response"))

    async def _refresher(self) -> None:
        """Coalesce bursts of list_changed into one refetch per list (a one-slot wake-up)."""
        while True:
            await self._refresh_wanted.wait()
            self._refresh_wanted = anyio.Event()
            methods, self._dirty = self._dirty, set()
            try:
                self.definitions = await self._fetch(methods)
            except BackendError as exc:
                log.warning(
                    "refreshing definitions failed", extra={"server": self.server, "reason": exc.message}
                )
                continue
            self.on_change(self)


async def list_all(
    session: UpstreamSession, method: str, key: str, timeout: float
) -> tuple[dict[str, Any], ...]:
    """Every item of one list, following the backend's cursors (bounded by MAX_PAGES)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        reply = await session.request(method, {"cursor": cursor} if cursor else None, timeout)
        result = reply.get("result")
        if not isinstance(result, dict):
            if reply.get("error", {}).get("code") == -32601:
                return ()  # advertised but not implemented: treat as empty
            raise BackendUnavailable(session.server, f"{method} failed: {reply.get('error')}")
        items.extend(item for item in result.get(key, ()) if isinstance(item, dict))
        cursor = result.get("nextCursor")
        if not cursor:
            break
    return tuple(items)
