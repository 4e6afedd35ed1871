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
from router.catalog.record import BackendRecord
from router.errors import BackendError, BackendUnavailable, BackendUnreachable, SessionExpired
from router.upstream.base import Channel, Message, MessageHandler
from router.upstream.http import HttpChannel
from router.upstream.session import UpstreamSession
from router.upstream.stdio import StdioChannel

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
        protocol: Literal["auto", "legacy", "2026-07-28"],
        on_change: Callable[[Backend], None],
        on_notification: Callable[[Backend, Message], Awaitable[None]] | None = None,
    ) -> None:
        self.record = record
        self.server = record.server
        self.timeout = record.timeout or request_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.protocol = record.protocol or protocol
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

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Supervise the instance until cancelled."""
        delay = self.reconnect_min
        while True:
            started = time.monotonic()
            await self._serve_once()
            if time.monotonic() - started > self.reconnect_max:
                delay = self.reconnect_min  # it was up for a while: a fresh failure, start small
            wait = delay * (0.8 + 0.4 * random.random())
            self.retry_at = time.monotonic() + wait
            await anyio.sleep(wait)
            delay = min(delay * 2, self.reconnect_max)

    async def _serve_once(self) -> None:
        channel = self._make_channel()
        channel.on_unsolicited = self._on_unsolicited
        self._lost = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                await self._connect(channel, tg)
                await self._lost.wait()
                tg.cancel_scope.cancel()
        except* (BackendError, SessionExpired, TimeoutError, OSError) as group:
            self._went_down(_reason(group.exceptions[0]))
        except* Exception as group:  # a bug must not take the router down with it
            log.error(
                "backend supervisor failed", extra={"server": self.server}, exc_info=group.exceptions[0]
            )
            self._went_down(f"internal error: {group.exceptions[0]!r}")
        finally:
            ended, self.session = self.session, None
            with anyio.CancelScope(shield=True):
                if ended is not None:
                    await ended.close()
                await channel.close()
            if self.state == "ready":
                self._set_state("down", self.last_error or "connection lost")

    async def _connect(self, channel: Channel, tg: TaskGroup) -> None:
        self.state = "connecting"
        await channel.open(tg)
        session = UpstreamSession(
            self.server,
            channel,
            protocol=self.protocol,
            connect_timeout=self.connect_timeout,
            prefer_legacy=isinstance(channel, StdioChannel),
        )
        await session.connect()
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

    def _went_down(self, reason: str) -> None:
        self._set_state("down", reason)
        log.warning("backend unavailable", extra={"server": self.server, "reason": reason})

    def _make_channel(self) -> Channel:
        record = self.record
        if record.transport == "stdio":
            assert record.command is not None
            return StdioChannel(self.server, record.command, record.args, dict(record.env), record.cwd)
        assert record.url is not None
        return HttpChannel(self.server, record.url, dict(record.headers), self.connect_timeout)

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
        try:
            await channel.listen(session.headers_for("GET"))
        except SessionExpired:
            self.lose("the backend forgot our session")

    # -- traffic ------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        on_message: MessageHandler | None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Message:
        """`headers` go with this request only (trace context, forwarded identity; HTTP only);
        `timeout` (a tool's own) overrides the instance's."""
        session = self.session
        if session is None or self.state != "ready":
            raise BackendUnreachable(self.server, self._down_reason())
        try:
            return await session.request(method, params, timeout or self.timeout, on_message, headers=headers)
        except BackendUnavailable as exc:
            if not session.channel.alive or isinstance(exc, BackendUnreachable):
                self.lose(exc.message)
            raise

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
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            reply = await session.request(method, {"cursor": cursor} if cursor else None, self.timeout)
            result = reply.get("result")
            if not isinstance(result, dict):
                if reply.get("error", {}).get("code") == -32601:
                    return ()  # advertised but not implemented: treat as empty
                raise BackendUnavailable(self.server, f"{method} failed: {reply.get('error')}")
            items.extend(item for item in result.get(key, ()) if isinstance(item, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tuple(items)

    async def _on_unsolicited(self, message: Message) -> None:
        method = message.get("method")
        if method in CHANGED:
            self._dirty.update(CHANGED[method])
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

    async def answer_request(self, message: Message) -> None:
        """A request the backend sent us: ping is answered, the rest refused (not relayed yet)."""
        session = self.session
        if session is None:
            return
        reply: Message = {"jsonrpc": "2.0", "id": message["id"]}
        if message["method"] == "ping":
            reply["result"] = {}
        else:
            reply["error"] = {
                "code": -32601,
                "message": f"{message['method']} is not available through the router",
            }
        with contextlib.suppress(BackendError, SessionExpired):
            await session.channel.notify(reply, session.headers_for("response"))

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
