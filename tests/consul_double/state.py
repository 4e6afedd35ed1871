"""State model of the Consul double: one agent that is also the only server of ``dc1``.

Nothing here knows about HTTP. The model keeps Consul's two views apart where the
difference is observable to clients:

* the *agent* view (``/v1/agent/services``, ``/v1/agent/checks``): what the local agent
  knows right now, including check output that has not been synced yet;
* the *catalog* view (``/v1/health/...``, ``/v1/catalog/...``): what a watcher sees, with
  raft-style indexes.

Indexes follow Consul's state store: one raft index bumped by every real write, per-table
indexes (``nodes``, ``services``, ``checks``, ``kvs``, ``tombstones``), one index per
service name, and a "last extinction" index for the moment a service name lost its last
instance. Idempotent writes (re-registering an identical service, a TTL pass that changes
neither status nor output) do not move any index, as in Consul, so blocking queries are
not woken by heartbeats.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from .decode import ServiceDefinition

PASSING = "passing"
WARNING = "warning"
CRITICAL = "critical"
SERF_CHECK_ID = "serfHealth"
CONSUL_SERVICE = "consul"
DEFAULT_VERSION = "1.21.4"

_KV_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,-_./")
_KV_SUSPICIOUS_EXTENSIONS = (
    ".js",
    ".css",
    ".html",
    ".htm",
    ".xml",
    ".json",
    ".txt",
    ".log",
    ".php",
    ".asp",
    ".jsp",
    ".cgi",
    ".pl",
    ".py",
    ".rb",
    ".sh",
    ".exe",
    ".dll",
    ".bat",
    ".cmd",
    ".com",
    ".scr",
    ".vbs",
    ".pdf",
    ".doc",
    ".docx",
    ".xls",
    ".xlsx",
    ".ppt",
    ".pptx",
    ".zip",
    ".rar",
    ".tar",
    ".gz",
    ".7z",
    ".bz2",
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".svg",
    ".ico",
    ".bmp",
    ".mp3",
    ".mp4",
    ".avi",
    ".mov",
    ".wmv",
    ".flv",
    ".swf",
    ".woff",
    ".woff2",
    ".ttf",
    ".eot",
    ".otf",
)


class ConsulError(Exception):
    """An API error: Consul answers these with a plain-text body and this status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def go_quote(text: str) -> str:
    """Approximate Go's ``%q`` for the identifiers that appear in Consul error texts."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


@dataclass(slots=True)
class DoubleConfig:
    """Knobs of the double. Defaults are Consul's own defaults where Consul has one."""

    datacenter: str = "dc1"
    node_name: str = "consul-double"
    node_address: str = "127.0.0.1"
    version: str = DEFAULT_VERSION
    # Consul clamps DeregisterCriticalServiceAfter to at least one minute ...
    min_deregister_after: float = 60.0
    # ... and its reaper runs every 30 seconds (the app schedules it).
    reap_interval: float = 30.0
    # check_update_interval: output-only changes reach the catalog after d/2 + rand(d).
    check_update_interval: float = 300.0
    check_output_max_size: int = 4096
    kv_max_value_size: int = 512 * 1024
    # Recent Consul releases restrict KV key characters and some file-like suffixes.
    strict_kv_keys: bool = True


@dataclass(slots=True)
class ServiceRecord:
    """One service instance on the (single) node."""

    id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] | None
    meta: dict[str, str] | None
    weights: tuple[int, int]
    enable_tag_override: bool
    agent_local: bool = True
    create_index: int = 0
    modify_index: int = 0

    def catalog_fields(self) -> tuple[object, ...]:
        """Fields whose change is a catalog write (Consul's NodeService.IsSame)."""
        meta = tuple(sorted(self.meta.items())) if self.meta else ()
        return (
            self.name,
            self.address,
            self.port,
            self.tags or (),
            meta,
            self.weights,
            self.enable_tag_override,
        )


@dataclass(slots=True)
class CheckRecord:
    """A health check. ``status``/``output`` are the agent view, ``synced_*`` the catalog view."""

    check_id: str
    name: str
    notes: str
    service_id: str
    service_name: str
    service_tags: tuple[str, ...]
    type: str
    ttl: float
    reap_after: float | None
    status: str
    output: str
    synced_status: str = ""
    synced_output: str = ""
    create_index: int = 0
    modify_index: int = 0
    ttl_deadline: float | None = None
    # Consul's CriticalTime: set by a status update to critical, not by registration.
    critical_since: float | None = None
    last_output: str = ""
    output_sync_due: float | None = None

    def catalog_fields(self) -> tuple[object, ...]:
        """Fields whose change is a catalog write (Consul's HealthCheck.IsSame)."""
        return (
            self.name,
            self.notes,
            self.status,
            self.output,
            self.service_id,
            self.service_name,
            self.service_tags,
            self.type,
        )

    def synced_fields(self) -> tuple[object, ...]:
        """What the catalog currently holds for this check."""
        return (
            self.name,
            self.notes,
            self.synced_status,
            self.synced_output,
            self.service_id,
            self.service_name,
            self.service_tags,
            self.type,
        )


@dataclass(slots=True)
class KVEntry:
    """A KV pair; ``value`` is None for an empty body, which Consul renders as null."""

    key: str
    value: bytes | None
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0


@dataclass(slots=True)
class HealthInstance:
    """One row of ``/v1/health/service/:name``: a service and all checks that apply to it."""

    service: ServiceRecord
    checks: list[CheckRecord] = field(default_factory=list)


def validate_kv_key(key: str, strict: bool) -> None:
    """Reject keys the way Consul's KV endpoint does (400 with Consul's reason text)."""
    if key.startswith("/"):
        raise ConsulError(400, "key must not begin with a '/'")
    if not strict:
        return
    for pos, char in enumerate(key):
        if char not in _KV_SAFE_CHARS:
            raise ConsulError(
                400,
                f"key contains invalid character '{char}' at position {pos}. "
                "Only alphanumeric characters and ,-_./ are allowed",
            )
    if "../" in key:
        raise ConsulError(400, "key contains path traversal sequence")
    lowered = key.lower()
    for ext in _KV_SUSPICIOUS_EXTENSIONS:
        if lowered.endswith(ext):
            raise ConsulError(
                400, f"key contains suspicious file extension '{ext}' that may be cached by proxies"
            )


class ConsulState:
    """Catalog, agent-local state, TTL timers and KV of a single-node Consul."""

    def __init__(
        self, config: DoubleConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or DoubleConfig()
        self._clock = clock
        self._rng = random.Random()
        self.node_id = "5f3c9b1e-d0b1-4c1a-9e2f-000000000001"
        self._raft_index = 0
        self._pending_index: int | None = None
        self._tables: dict[str, int] = {"nodes": 0, "services": 0, "checks": 0, "kvs": 0, "tombstones": 0}
        self._service_index: dict[str, int] = {}
        self._extinction_index = 0
        self.node_create_index = 0
        self._services: dict[str, ServiceRecord] = {}
        self._checks: dict[str, CheckRecord] = {}
        self._kv: dict[str, KVEntry] = {}
        self._tombstones: dict[str, int] = {}
        self._change_listeners: list[Callable[[], None]] = []
        self._timer_listeners: list[Callable[[], None]] = []
        self._bootstrap()

    # ----------------------------------------------------------------- plumbing

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every write that moved the raft index."""
        self._change_listeners.append(callback)

    def on_timers_changed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a TTL or deferred-sync deadline was set or moved."""
        self._timer_listeners.append(callback)

    @property
    def raft_index(self) -> int:
        """The last raft index handed out by a write."""
        return self._raft_index

    def now(self) -> float:
        """The model's clock (monotonic seconds)."""
        return self._clock()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """Group changes into one raft entry: one index, one notification, at most."""
        self._pending_index = None
        try:
            yield
        finally:
            allocated = self._pending_index
            self._pending_index = None
            if allocated is not None:
                for callback in self._change_listeners:
                    callback()

    def _index(self) -> int:
        """The index of the write in progress, allocated on first real change."""
        if self._pending_index is None:
            self._raft_index += 1
            self._pending_index = self._raft_index
        return self._pending_index

    def _timers_changed(self) -> None:
        for callback in self._timer_listeners:
            callback()

    def _touch_service_name(self, name: str, *tables: str) -> int:
        idx = self._index()
        for table in tables:
            self._tables[table] = idx
        self._service_index[name] = idx
        return idx

    def _instances_of(self, name: str) -> list[ServiceRecord]:
        return sorted((s for s in self._services.values() if s.name == name), key=lambda s: s.id)

    def _mark_extinct_if_empty(self, name: str) -> None:
        """Consul records when a name lost its last instance and drops its per-name index."""
        if not any(s.name == name for s in self._services.values()):
            self._extinction_index = self._index()
            self._service_index.pop(name, None)

    def _bootstrap(self) -> None:
        """What a fresh dev agent holds: its node, serfHealth, and the ``consul`` service."""
        with self._write():
            idx = self._index()
            self._tables["nodes"] = idx
            self.node_create_index = idx
        with self._write():
            serf = CheckRecord(
                check_id=SERF_CHECK_ID,
                name="Serf Health Status",
                notes="",
                service_id="",
                service_name="",
                service_tags=(),
                type="",
                ttl=0.0,
                reap_after=None,
                status=PASSING,
                output="Agent alive and reachable",
            )
            self._store_check(serf)
        with self._write():
            consul = ServiceRecord(
                id=CONSUL_SERVICE,
                name=CONSUL_SERVICE,
                address="",
                port=8300,
                tags=None,
                meta={
                    "raft_version": "3",
                    "serf_protocol_current": "2",
                    "serf_protocol_max": "5",
                    "serf_protocol_min": "1",
                    "version": self.config.version,
                },
                weights=(1, 1),
                enable_tag_override=False,
                agent_local=False,
            )
            idx = self._touch_service_name(CONSUL_SERVICE, "services")
            consul.create_index = consul.modify_index = idx
            self._services[consul.id] = consul

    # ------------------------------------------------------------- registration

    def register_service(self, definition: ServiceDefinition, replace_existing_checks: bool = False) -> None:
        """PUT /v1/agent/service/register: add or replace a service and its TTL checks.

        As in Consul, re-registering resets the listed checks to their initial status
        (critical unless ``Status`` is given) and restarts their TTL; checks of the service
        that the new definition does not list are kept unless ``replace_existing_checks``.
        """
        now = self.now()
        existing = self._services.get(definition.id)
        if existing is not None and not existing.agent_local:
            raise ConsulError(400, f"Service ID {go_quote(definition.id)} is reserved by the agent")
        with self._write():
            record = ServiceRecord(
                id=definition.id,
                name=definition.name,
                address=definition.address,
                port=definition.port,
                tags=definition.tags,
                meta=definition.meta,
                weights=definition.weights,
                enable_tag_override=definition.enable_tag_override,
            )
            if existing is not None and existing.catalog_fields() == record.catalog_fields():
                record.create_index, record.modify_index = existing.create_index, existing.modify_index
            else:
                idx = self._touch_service_name(record.name, "services")
                record.create_index = existing.create_index if existing is not None else idx
                record.modify_index = idx
            self._services[record.id] = record
            if existing is not None and existing.name != record.name:
                self._touch_service_name(existing.name, "services")
                self._mark_extinct_if_empty(existing.name)

            listed: set[str] = set()
            many = len(definition.checks) > 1
            for position, check_def in enumerate(definition.checks, start=1):
                check_id = check_def.check_id or f"service:{record.id}" + (f":{position}" if many else "")
                listed.add(check_id)
                reap_after = None
                if check_def.deregister_critical_after > 0:
                    reap_after = max(check_def.deregister_critical_after, self.config.min_deregister_after)
                status = check_def.status or CRITICAL
                self._store_check(
                    CheckRecord(
                        check_id=check_id,
                        name=check_def.name or f"Service '{record.name}' check",
                        notes=check_def.notes,
                        service_id=record.id,
                        service_name=record.name,
                        service_tags=record.tags or (),
                        type="ttl",
                        ttl=check_def.ttl,
                        reap_after=reap_after,
                        status=status,
                        output="",
                        ttl_deadline=now + check_def.ttl,
                    )
                )
            for check in list(self._checks.values()):
                if check.service_id != record.id or check.check_id in listed:
                    continue
                if replace_existing_checks:
                    self._drop_check(check)
                    continue
                # Kept checks follow the service's name and tags.
                before = (check.service_name, check.service_tags)
                check.service_name, check.service_tags = record.name, record.tags or ()
                if before != (check.service_name, check.service_tags):
                    self._sync_check(check, force=True)
        self._timers_changed()

    def _store_check(self, check: CheckRecord) -> None:
        """Insert or replace a check, writing to the catalog only if it differs."""
        old = self._checks.get(check.check_id)
        check.synced_status, check.synced_output = check.status, check.output
        if old is not None and old.synced_fields() == check.catalog_fields():
            check.create_index, check.modify_index = old.create_index, old.modify_index
        else:
            idx = self._index()
            self._tables["checks"] = idx
            if check.service_name:
                self._service_index[check.service_name] = idx
            if old is not None and old.service_name and old.service_name != check.service_name:
                self._touch_service_name(old.service_name)
            check.create_index = old.create_index if old is not None else idx
            check.modify_index = idx
        self._checks[check.check_id] = check

    def _drop_check(self, check: CheckRecord) -> None:
        del self._checks[check.check_id]
        idx = self._index()
        self._tables["checks"] = idx
        if check.service_name and any(s.name == check.service_name for s in self._services.values()):
            self._service_index[check.service_name] = idx

    def deregister_service(self, service_id: str) -> None:
        """PUT /v1/agent/service/deregister/:id (404 for an unknown ID, as Consul)."""
        service = self._services.get(service_id)
        if service is None or not service.agent_local:
            raise ConsulError(
                404,
                f"Unknown service ID {go_quote(service_id)}. "
                "Ensure that the service ID is passed, not the service name.",
            )
        with self._write():
            self._remove_service(service)

    def _remove_service(self, service: ServiceRecord) -> None:
        for check in list(self._checks.values()):
            if check.service_id == service.id:
                self._drop_check(check)
        del self._services[service.id]
        self._touch_service_name(service.name, "services")
        self._mark_extinct_if_empty(service.name)

    # ------------------------------------------------------------------- checks

    def update_ttl_check(self, check_id: str, status: str, output: str) -> None:
        """PUT /v1/agent/check/pass|warn|fail|update: set status and output, restart the TTL."""
        check = self._checks.get(check_id)
        if check is None or check.ttl <= 0:
            # Consul answers 500 with exactly this text; registrars match on it to re-register.
            raise ConsulError(500, f"CheckID {go_quote(check_id)} does not have associated TTL")
        limit = self.config.check_output_max_size
        encoded = output.encode()
        if len(encoded) > limit:
            kept = encoded[:limit].decode(errors="ignore")
            output = f"{kept} ... (captured {limit} of {len(encoded)} bytes)"
        now = self.now()
        with self._write():
            self._apply_check_update(check, status, output, now)
        check.last_output = output
        check.ttl_deadline = now + check.ttl
        self._timers_changed()

    def _apply_check_update(self, check: CheckRecord, status: str, output: str, now: float) -> None:
        """Consul's local-state UpdateCheck: track critical time, skip idempotent updates,
        and defer output-only changes by check_update_interval."""
        if status == CRITICAL:
            if check.critical_since is None:
                check.critical_since = now
        else:
            check.critical_since = None
        if check.status == status and check.output == output:
            return
        interval = self.config.check_update_interval
        if interval > 0 and check.status == status:
            check.output = output
            if check.output_sync_due is None:
                check.output_sync_due = now + interval / 2 + self._rng.random() * interval
            return
        check.status, check.output = status, output
        self._sync_check(check)

    def _sync_check(self, check: CheckRecord, force: bool = False) -> None:
        """Copy the agent view of a check into the catalog, bumping indexes if it changed."""
        check.output_sync_due = None
        if not force and (check.synced_status, check.synced_output) == (check.status, check.output):
            return
        idx = self._index()
        self._tables["checks"] = idx
        if check.service_name:
            self._service_index[check.service_name] = idx
        check.synced_status, check.synced_output = check.status, check.output
        check.modify_index = idx

    def run_timers(self) -> float | None:
        """Expire TTL checks and flush deferred output syncs that are due.

        Returns the number of seconds until the next deadline, or None if there is none.
        """
        now = self.now()
        with self._write():
            for check in list(self._checks.values()):
                if check.ttl_deadline is not None and now >= check.ttl_deadline:
                    # A Go timer fires once; the next pass/warn/fail restarts it.
                    check.ttl_deadline = None
                    expired = "TTL expired"
                    if check.last_output:
                        expired = f"TTL expired (last output before timeout follows): {check.last_output}"
                    self._apply_check_update(check, CRITICAL, expired, now)
                if check.output_sync_due is not None and now >= check.output_sync_due:
                    self._sync_check(check)
        deadlines = [
            t
            for check in self._checks.values()
            for t in (check.ttl_deadline, check.output_sync_due)
            if t is not None
        ]
        return max(0.0, min(deadlines) - now) if deadlines else None

    def reap(self) -> list[str]:
        """One pass of Consul's reaper: deregister services with a check critical for longer
        than its (clamped) DeregisterCriticalServiceAfter. Returns the reaped service IDs."""
        now = self.now()
        reaped: list[str] = []
        with self._write():
            for check in list(self._checks.values()):
                service = self._services.get(check.service_id)
                if service is None or not service.agent_local or service.id in reaped:
                    continue
                if check.reap_after is None or check.critical_since is None:
                    continue
                if now - check.critical_since > check.reap_after:
                    reaped.append(service.id)
                    self._remove_service(service)
        return reaped

    # ------------------------------------------------------------------ queries

    def _catalog_index(self, include_checks: bool) -> int:
        tables = ["nodes", "services"] + (["checks"] if include_checks else [])
        return max(self._tables[t] for t in tables)

    def _service_query_index(self, name: str, include_checks: bool) -> int:
        """Consul's maxIndexForService: per-name index, else the last extinction, else the
        catalog's table indexes. Never 0, so clients always block."""
        if not any(s.name == name for s in self._services.values()) and self._extinction_index:
            return max(1, self._extinction_index)
        if name in self._service_index:
            return max(1, self._service_index[name])
        return max(1, self._catalog_index(include_checks))

    @staticmethod
    def _has_tags(service: ServiceRecord, tags: Sequence[str]) -> bool:
        present = {t.lower() for t in service.tags or ()}
        return all(t.lower() in present for t in tags)

    def health_service(self, name: str, tags: Sequence[str] = ()) -> tuple[int, list[HealthInstance]]:
        """GET /v1/health/service/:name before ?passing filtering (it does not change the index)."""
        node_checks = [c for c in self._checks.values() if not c.service_id]
        rows = []
        for service in self._instances_of(name):
            if not self._has_tags(service, tags):
                continue
            checks = sorted(
                (c for c in self._checks.values() if c.service_id == service.id), key=lambda c: c.check_id
            )
            rows.append(HealthInstance(service=service, checks=[*node_checks, *checks]))
        return self._service_query_index(name, include_checks=True), rows

    # ----------------------------------------------------------------------- KV

    def _kv_table_index(self) -> int:
        return max(self._tables["kvs"], self._tables["tombstones"])

    def kv_get(self, key: str) -> tuple[int, KVEntry | None]:
        """One key; the index is its ModifyIndex, or the KV table index when it is missing."""
        entry = self._kv.get(key)
        idx = entry.modify_index if entry is not None else self._kv_table_index()
        return max(1, idx), (replace(entry) if entry is not None else None)

    def kv_put(self, key: str, value: bytes) -> bool:
        """PUT: set ``key``."""
        existing = self._kv.get(key)
        with self._write():
            idx = self._index()
            self._tables["kvs"] = idx
            self._kv[key] = KVEntry(
                key=key,
                value=value or None,
                flags=0,
                create_index=existing.create_index if existing is not None else idx,
                modify_index=idx,
                lock_index=existing.lock_index if existing is not None else 0,
            )
        return True

    def kv_delete(self, key: str) -> bool:
        """DELETE one key (deleting a missing key succeeds, as in Consul)."""
        if key in self._kv:
            with self._write():
                idx = self._index()
                self._tables["kvs"] = self._tables["tombstones"] = idx
                del self._kv[key]
                self._tombstones[key] = idx
        return True
