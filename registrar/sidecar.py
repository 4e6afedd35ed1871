"""The registrar's life: probe, register, keep the health check alive, notice drift, leave.

1. Probe the server over MCP (`probe.py`) until it answers; only then register it.
2. Every `ttl / 3` seconds ping it over a kept-open session and report the result as the health
   check (Consul TTL pass/fail; etcd lease keepalive, or the key deleted while it fails). If the
   registry lost the record (agent restarted, lease expired, reaped) register it again.
3. Re-probe on `list_changed` (heard over that session) and every `probe_interval` seconds. A
   changed definitions hash is drift: logged, counted, and written to the record; with
   quarantine on, the record is marked `quarantined` (routers drop the instance) until an
   operator approves the new hash (`toolmesh approve`), which the registrar reads each beat.
4. On SIGTERM/SIGINT (or cancellation) deregister, stop the bridge and its child, and return.
"""

from __future__ import annotations

import logging
import secrets
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from registrar.bridge import Bridge
from registrar.probe import ProbeFailed, ProbeResult, probe
from router.catalog.record import CHECK_PASSING_NOTE, BackendRecord, DefinitionsState
from router.catalog.sources.registry import Registry, RegistryUnavailable
from router.eras import MODERN_VERSION
from router.errors import BackendError
from router.settings import RegistrarSettings
from router.upstream.backend import Backend

log = logging.getLogger("toolmesh.registrar")


class SidecarMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.drift = Counter(
            "toolmesh_registrar_drift", "Changes of the server's definitions hash seen.", ["server"],
            registry=self.registry,
        )  # fmt: skip
        self.state = Gauge(
            "toolmesh_registrar_definitions_state",
            "1 for the current definitions state (ok, drifted, quarantined).",
            ["server", "state"],
            registry=self.registry,
        )
        self.healthy = Gauge(
            "toolmesh_registrar_server_healthy", "1 while the server answers the MCP probe.", ["server"],
            registry=self.registry,
        )  # fmt: skip
        self.registered = Gauge(
            "toolmesh_registrar_registered", "1 while the record is in the registry.", ["server"],
            registry=self.registry,
        )  # fmt: skip


def make_registry(settings: RegistrarSettings) -> Registry:
    if settings.consul:
        from router.catalog.sources.consul import ConsulRegistry

        return ConsulRegistry(
            settings.consul,
            service=settings.consul_service,
            ttl=settings.ttl,
            deregister_after=settings.deregister_after,
        )
    from router.catalog.sources.etcd import EtcdRegistry

    assert settings.etcd is not None
    return EtcdRegistry(settings.etcd, prefix=settings.etcd_prefix, ttl=settings.ttl)


class Sidecar:
    def __init__(
        self, settings: RegistrarSettings, registry: Registry, metrics: SidecarMetrics | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics or SidecarMetrics()
        self.name = settings.name
        self.instance_id = settings.instance_id or f"{_host_label()}-{secrets.token_hex(4)}"
        self.bridge: Bridge | None = None
        self.url = settings.url or ""
        # A bridged stdio server is served over Streamable HTTP by the bridge.
        self.transport: Literal["http", "sse"] = settings.transport if settings.url else "http"
        self.record: BackendRecord | None = None
        self.canonical = b""
        self.baseline: str | None = None  # the approved (or first seen) definitions hash
        self.registered = False
        self._reprobe = anyio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; SIGTERM/SIGINT cancel it. Deregisters on the way out."""
        s = self.settings
        work = anyio.CancelScope()  # what a signal stops; the bridge is stopped gracefully after
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._signals, work)
            if s.command:
                advertise = s.advertise or (s.host if s.host not in ("0.0.0.0", "::") else socket.getfqdn())
                self.bridge = Bridge(
                    self.name, s.command, host=s.host, port=s.port, advertise=advertise, log_level=s.log_level
                )
                port = self.bridge.bind()
                host = f"[{advertise}]" if ":" in advertise else advertise
                self.url = f"http://{host}:{port}/mcp"
                tg.start_soon(self.bridge.run)
                log.info("bridge listening", extra={"server": self.name, "url": self.url})
            if s.metrics_port is not None:
                start_http_server(s.metrics_port, addr=s.host, registry=self.metrics.registry)
            with work:
                try:
                    async with self.registry:
                        await self._serve()
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._leave()
                        if self.bridge is not None:
                            await self.bridge.stop()
            tg.cancel_scope.cancel()

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("stopping", extra={"server": self.name, "signal": signal.Signals(signum).name})
                scope.cancel()
                return

    async def _leave(self) -> None:
        if self.record is None or not self.registered:
            return
        try:
            with anyio.move_on_after(5):
                async with self.registry:
                    await self.registry.deregister(self.record)
            log.info("deregistered", extra={"server": self.name, "instance": self.instance_id})
        except RegistryUnavailable as exc:
            log.warning("could not deregister", extra={"server": self.name, "reason": str(exc)})
        self.registered = False
        self.metrics.registered.labels(self.name).set(0)

    # -- the loop -----------------------------------------------------------------------------

    async def _serve(self) -> None:
        s = self.settings
        beat = max(s.ttl / 3, 0.2)
        result = await self._first_probe(beat)
        if s.quarantine:
            self.baseline = await self._retrying(lambda: self.registry.approved(self.name), beat)
            if self.baseline is None:  # trust on first use: the first definitions seen are approved
                await self._retrying(lambda: self.registry.approve(self.name, result.digest), beat)
                self.baseline = result.digest
        self._update(result)
        async with anyio.create_task_group() as tg:
            watcher = self._watcher()
            tg.start_soon(watcher.run)
            with anyio.move_on_after(s.probe_timeout):
                await watcher.first_attempt.wait()  # so the first beat can already pass
            next_probe = time.monotonic() + s.probe_interval
            while True:
                await self._beat(watcher)
                with anyio.move_on_after(beat):
                    await self._reprobe.wait()
                if self._reprobe.is_set() or time.monotonic() >= next_probe:
                    self._reprobe = anyio.Event()
                    next_probe = time.monotonic() + s.probe_interval
                    await self._probe_again()

    async def _first_probe(self, beat: float) -> ProbeResult:
        while True:
            if self.bridge is not None and not self.bridge.child_ready:
                # The bridge answers before its child is up; its lists would be empty.
                await anyio.sleep(0.05)
                continue
            try:
                return await probe(self.name, self.url, self.settings.probe_timeout, self.transport)
            except ProbeFailed as exc:
                log.warning(
                    "server does not answer the MCP probe yet; not registering",
                    extra={"server": self.name, "url": self.url, "reason": str(exc)},
                )
            await anyio.sleep(beat)

    async def _retrying(self, call: Callable[[], Any], beat: float) -> Any:
        while True:
            try:
                return await call()
            except RegistryUnavailable as exc:
                log.warning("registry unreachable; retrying", extra={"server": self.name, "reason": str(exc)})
            await anyio.sleep(beat)

    def _watcher(self) -> Backend:
        """A kept-open session to the server: answers pings and hears list_changed."""
        assert self.record is not None
        probe_record = self.record.model_copy(update={"instance_id": "probe"})
        s = self.settings
        # list_changed reaches a legacy session's GET stream; a 2026-07-28 session would need a
        # subscriptions/listen stream, which the upstream code does not hold.
        legacy = any(era != MODERN_VERSION for era in self.record.eras)
        return Backend(
            probe_record,
            request_timeout=s.probe_timeout,
            connect_timeout=s.probe_timeout,
            reconnect_min=0.2,
            reconnect_max=max(s.ttl / 3, 0.5),
            protocol="legacy" if legacy else "auto",
            on_change=self._on_watcher_change,
        )

    def _on_watcher_change(self, backend: Backend) -> None:
        if backend.state != "ready" or backend.definitions is None:
            return
        if self._seen_lists is not None and backend.definitions != self._seen_lists:
            self._reprobe.set()  # list_changed brought different lists: probe them properly
        self._seen_lists = backend.definitions

    _seen_lists: Any = None
    _passing: bool | None = None

    async def _beat(self, watcher: Backend) -> None:
        passing, note = await self._health(watcher)
        if passing != self._passing:
            level = logging.INFO if passing else logging.WARNING
            log.log(
                level, "server health changed", extra={"server": self.name, "passing": passing, "note": note}
            )
            self._passing = passing
        self.metrics.healthy.labels(self.name).set(1 if passing else 0)
        assert self.record is not None
        try:
            if self.registered and not await self.registry.heartbeat(self.record, passing, note):
                self.registered = False
                if passing:
                    log.warning(
                        "the registry lost our record; registering again", extra={"server": self.name}
                    )
            if passing and not self.registered:
                await self.registry.register(self.record, self.canonical)
                self.registered = True
                log.info(
                    "registered",
                    extra={
                        "server": self.name, "instance": self.instance_id, "url": self.url,
                        "hash": self.record.definitions_hash, "state": self.record.definitions_state,
                    },
                )  # fmt: skip
            if self.record.definitions_state != "ok":
                await self._check_approval()
        except RegistryUnavailable as exc:
            log.warning("registry unreachable; will retry", extra={"server": self.name, "reason": str(exc)})
        self.metrics.registered.labels(self.name).set(1 if self.registered else 0)

    async def _health(self, watcher: Backend) -> tuple[bool, str]:
        if self.bridge is not None and not self.bridge.child_ready:
            return False, "the stdio server behind the bridge is not running"
        try:
            with anyio.fail_after(self.settings.probe_timeout):
                # Any JSON-RPC response proves the server answers MCP; 2026-07-28 servers may
                # answer ping with -32601, which is still an answer.
                await watcher.call("ping", None, None)
        except (BackendError, TimeoutError) as exc:
            return False, f"MCP ping failed: {getattr(exc, 'message', None) or 'timeout'}"
        return True, CHECK_PASSING_NOTE

    async def _probe_again(self) -> None:
        try:
            result = await probe(self.name, self.url, self.settings.probe_timeout, self.transport)
        except ProbeFailed as exc:
            log.warning("re-probe failed", extra={"server": self.name, "reason": str(exc)})
            return
        before = self.record
        self._update(result)
        if self.record != before and self.registered:
            try:
                await self.registry.register(self.record, self.canonical)  # type: ignore[arg-type]
            except RegistryUnavailable as exc:
                self.registered = False
                log.warning("could not update the record", extra={"server": self.name, "reason": str(exc)})

    async def _check_approval(self) -> None:
        assert self.record is not None
        approved = await self.registry.approved(self.name)
        current = self.record.pending_hash or self.record.definitions_hash
        if approved is not None and approved == current and approved != self.baseline:
            log.info("drifted definitions approved", extra={"server": self.name, "hash": approved})
            self.baseline = approved
            self._update(self._last)
            await self.registry.register(self.record, self.canonical)

    # -- the record ---------------------------------------------------------------------------

    _last: ProbeResult

    def _update(self, result: ProbeResult) -> None:
        """Fold a probe result into the record, deciding the definitions state."""
        self._last = result
        if self.baseline is None:
            self.baseline = result.digest
        state: DefinitionsState = "ok"
        served, pending = result.digest, None
        if result.digest != self.baseline:
            if self.settings.quarantine:
                state, served, pending = "quarantined", self.baseline, result.digest
            else:
                state = "drifted"
        previous = self.record
        if previous is not None and result.digest != (previous.pending_hash or previous.definitions_hash):
            self.metrics.drift.labels(self.name).inc()
            log.warning(
                "definitions changed",
                extra={
                    "server": self.name, "instance": self.instance_id, "was": previous.definitions_hash,
                    "now": result.digest, "state": state,
                },
            )  # fmt: skip
        self.canonical = result.canonical
        self.record = BackendRecord(
            server=self.name,
            instance_id=self.instance_id,
            transport=self.transport,
            url=self.url,
            timeout=None,
            tags=tuple(self.settings.tags),
            eras=result.eras,
            capabilities=result.capabilities,
            server_info=self._server_info(result),
            definitions_hash=served,
            definitions_state=state,
            pending_hash=pending,
        )
        for each in ("ok", "drifted", "quarantined"):
            self.metrics.state.labels(self.name, each).set(1 if each == state else 0)

    def _server_info(self, result: ProbeResult) -> tuple[tuple[str, str], ...]:
        if self.bridge is not None:  # the bridge answers as toolmesh; report the child instead
            info = self.bridge.child_server_info
            return tuple((k, info[k]) for k in ("name", "version", "title") if info.get(k))
        return result.server_info


def _host_label() -> str:
    label = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return label.strip("-.")[:40] or "host"
