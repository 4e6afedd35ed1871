"""Extra children of one stdio backend, each declaring the capabilities of the clients it serves.

A stdio child has one session, and a legacy server decides what to offer (and whom it may ask)
from the capabilities that session declared: server-everything registers its sampling tool only
for a client that can sample. The backend's main child declares everything the router can relay
and keeps serving the catalog and clients that declared none of those capabilities. A client that
did declare some gets a child started with those capabilities (a variant; `declared` keeps the
ones a server tailors to, with the flags the spec defines), so the server sees that client as it is.

Variants are grouped by capability set, so clients that declared the same share children; a
client that declared `roots` gets children of its own (a server keeps a client's roots and asks
for them outside any call, so they are one client's data). A call leases a child: an idle one of
its group if there is one, else a new one while the backend has fewer than `limit`, else a busy
one of its group, shared; only a group without any child closes the least recently used idle
child of another group to start its own.
Because of that, a call usually has its child to itself, and a question the server asks over
stdio, where nothing on the wire names the call that asks, can only be that call's. When no
child can be had (the limit is reached and every child is busy with another group, or starting
children failed recently) the call takes the main child, where the relay refuses on the client's
behalf what it did not declare.

Children idle for `idle_timeout` are stopped; all of them stop with the backend's connection. A
child that dies is not restarted: the next call starts a new one. A child that fails to start
makes the pool wait (doubling from `backoff_min` to `backoff_max`) before starting another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup

from router.catalog.record import UpstreamProtocol
from router.errors import BackendError, SessionExpired
from router.upstream.base import Message, Outside, declared, refusal
from router.upstream.session import UpstreamSession
from router.upstream.stdio import StdioChannel

log = logging.getLogger("toolmesh.upstream")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """Who leases a child: the client (its session id), its capabilities, its outside handler."""

    client: str  # "" for a client without a session (2026-07-28), which owns no children
    capabilities: Mapping[str, Any]
    outside: Outside | None = None

    @property
    def owner(self) -> str | None:
        """The client whose children these are alone, if any (one that declared roots)."""
        return self.client if self.client and "roots" in self.capabilities else None

    @property
    def group(self) -> tuple[bytes, str | None]:
        """Children of one group declare the same capabilities and may serve any of its clients."""
        return orjson.dumps(declared(self.capabilities), option=orjson.OPT_SORT_KEYS), self.owner


@dataclass(eq=False)
class Child:
    group: tuple[bytes, str | None]
    capabilities: dict[str, Any]
    channel: StdioChannel
    session: UpstreamSession | None = None
    ready: anyio.Event = field(default_factory=anyio.Event)
    calls: int = 0
    last_used: float = field(default_factory=time.monotonic)
    clients: dict[str, Outside | None] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return not self.ready.is_set() or (self.session is not None and self.channel.alive)


class Children:
    def __init__(
        self,
        server: str,
        make_channel: Callable[[], StdioChannel],
        *,
        protocol: UpstreamProtocol,
        connect_timeout: float,
        limit: int,
        idle_timeout: float,
        backoff_min: float,
        backoff_max: float,
    ) -> None:
        self.server = server
        self.make_channel = make_channel
        self.protocol = protocol
        self.connect_timeout = connect_timeout
        self.limit = limit
        self.idle_timeout = idle_timeout
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.children: list[Child] = []
        self._delay = backoff_min
        self._retry_at = 0.0
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup) -> None:
        """The backend's connection (re)started: children run in its task group from now on."""
        self._tg = tg
        self.children = []  # their readers were cancelled with the previous connection

    def __len__(self) -> int:
        return len(self.children)

    @asynccontextmanager
    async def lease(self, spec: ChildSpec) -> AsyncIterator[UpstreamSession | None]:
        """A session whose child declared `spec.capabilities`, for one call; None means "use the
        main child" (see the module docstring for when)."""
        child = self._choose(spec)
        if child is None:
            yield None
            return
        child.calls += 1
        child.clients[spec.client] = spec.outside
        try:
            if not child.ready.is_set():
                if child.calls == 1:
                    await self._start(child)
                else:
                    await child.ready.wait()
            yield child.session if child.usable else None
        finally:
            child.calls -= 1
            child.last_used = time.monotonic()
            if not child.usable:
                self._discard(child)

    def _choose(self, spec: ChildSpec) -> Child | None:
        """Decided without awaiting, so two calls never both take the last free place."""
        for dead in [c for c in self.children if not c.usable]:
            self._discard(dead)
        group = spec.group
        mine = [c for c in self.children if c.group == group]
        idle = [c for c in mine if c.calls == 0]
        if idle:
            return max(idle, key=lambda c: c.last_used)
        if time.monotonic() >= self._retry_at and self._make_room(evict=not mine):
            child = Child(group, declared(spec.capabilities), self.make_channel())
            child.channel.on_unsolicited = lambda message: self._hand_over(child, message)
            self.children.append(child)
            return child
        return min(mine, key=lambda c: c.calls) if mine else None

    def _make_room(self, evict: bool) -> bool:
        """Room for one more child: a free place, or (`evict`: only for a group with no child at
        all) the place of another group's least recently used idle child. A group that has a
        child shares it at the limit instead: taking another group's place for a second child
        made the pool thrash under concurrent calls from several groups (each start takes a
        process start, seconds on a busy machine, while the call waits; seen in bench/soak.py)."""
        if len(self.children) < self.limit:
            return True
        if not evict:
            return False
        idle = [c for c in self.children if c.calls == 0 and c.ready.is_set()]
        if not idle:
            return False
        self._discard(min(idle, key=lambda c: c.last_used))
        return True

    async def _start(self, child: Child) -> None:
        tg = self._tg
        try:
            if tg is None:
                raise RuntimeError("children used before the backend connected")
            await child.channel.open(tg)
            session = UpstreamSession(
                self.server,
                child.channel,
                protocol=self.protocol,
                capabilities=child.capabilities,
                connect_timeout=self.connect_timeout,
                prefer_legacy=True,
            )
            await session.connect()
        except (BackendError, SessionExpired, OSError, TimeoutError, RuntimeError) as exc:
            self._retry_at = time.monotonic() + self._delay
            log.warning(
                "cannot start a child for a client's capabilities; using the main one",
                extra={"server": self.server, "reason": str(exc), "retry_in": round(self._delay, 2)},
            )
            self._delay = min(self._delay * 2, self.backoff_max)
            self._discard(child)
        else:
            child.session = session
            self._delay = self.backoff_min
            log.info(
                "started a child for a client's capabilities",
                extra={"server": self.server, "children": len(self.children)},
            )
        finally:
            child.ready.set()

    async def _hand_over(self, child: Child, message: Message) -> None:
        """Never make the child's reader wait for a client (it may take minutes to answer)."""
        if self._tg is not None:
            self._tg.start_soon(self._outside_safely, child, message)

    async def _outside_safely(self, child: Child, message: Message) -> None:
        """A failure here is one message's: it must not end the backend's connection."""
        try:
            await self._outside(child, message)
        except Exception:
            log.exception("handling a child's message failed", extra={"server": self.server})

    async def _outside(self, child: Child, message: Message) -> None:
        """What a child says outside any call goes to its client, if it has exactly one; list
        changes and resource news reach everyone through the main child, which hears them too."""
        if message.get("method") == "ping" and "id" in message:
            reply: Message | None = {"result": {}}
        else:
            handler = next(iter(child.clients.values())) if len(child.clients) == 1 else None
            reply = await handler(message) if handler is not None else None
        if "id" not in message or "method" not in message:
            return
        if reply is None:
            reply = refusal(message["method"], "asked outside any call, where no one client can be asked")
        with suppress(BackendError, SessionExpired):
            await child.channel.notify({"jsonrpc": "2.0", "id": message["id"], **reply}, {})

    def _discard(self, child: Child) -> None:
        """Forget a child and stop its process in the background (SIGTERM, then SIGKILL)."""
        if child not in self.children:
            return  # discarded already, or taken by close_all, which stops it
        self.children.remove(child)
        if self._tg is not None:
            with suppress(RuntimeError):  # the connection's task group ended: close_all stopped it
                self._tg.start_soon(self._close, child)

    async def _close(self, child: Child) -> None:
        with anyio.CancelScope(shield=True):
            await child.channel.close()

    async def forget(self, client: str) -> None:
        """A client's session ended: its own children stop, shared ones stop serving it."""
        for child in list(self.children):
            child.clients.pop(client, None)
            if not child.clients and child.group[1] == client:
                self._discard(child)

    async def reap(self) -> None:
        """Stop children idle for longer than `idle_timeout`, until cancelled."""
        while True:
            await anyio.sleep(max(0.5, min(self.idle_timeout / 4, 30.0)))
            stale = time.monotonic() - self.idle_timeout
            for child in [c for c in self.children if c.calls == 0 and c.last_used < stale]:
                log.info("stopping an idle child", extra={"server": self.server})
                self._discard(child)

    async def close_all(self) -> None:
        """Stop every child now (the backend's connection ended or the router is stopping)."""
        children, self.children = self.children, []
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for child in children:
                    tg.start_soon(child.channel.close)
