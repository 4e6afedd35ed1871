"""The service record: how to reach one backend instance, and how registries store it.

This is the single model that every catalog source produces and the registrar writes; the
router reads nothing else. A *server* is a logical name (its tools are exposed under it); an
*instance* is one reachable copy of it. The static file gives one instance per server; a registry
may hold several, each with its own `instance_id`.

The registry layout lives here too, so the registrar (writer) and the router (reader) cannot
disagree about it:

- Consul: one instance of service `mcp` (configurable) per backend instance, service ID
  `<service>-<server>-<instance>`, its address and port, and `Meta` (see `META_KEYS`) holding
  everything else within Consul's limits (64 pairs, keys `[A-Za-z0-9_-]`, values <= 512 chars).
  The definitions themselves are in KV at `toolmesh/definitions/<sha256>`, an approved hash per
  server at `toolmesh/approved/<server>`.
- etcd: `<prefix>instances/<server>/<instance>` holds the record as JSON under the registrar's
  lease; `<prefix>definitions/<sha256>` and `<prefix>approved/<server>` as in Consul KV.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.catalog.server_rules import LimitRule, ServerPolicy

SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

Transport = Literal["http", "stdio", "sse"]
"""`http`: Streamable HTTP; `sse`: the 2024-11-05 HTTP+SSE transport (GET an event stream, POST
to the endpoint it names); `stdio`: a child process."""
UpstreamProtocol = Literal["auto", "legacy", "2026-07-28"]
DefinitionsState = Literal["ok", "drifted", "quarantined"]
"""`ok`: definitions as approved (or no approval kept); `drifted`: they changed and are served
(quarantine off); `quarantined`: they changed and the router must not serve the instance until
an operator approves `pending_hash`."""


class BackendRecord(BaseModel):
    """One backend instance; hashable and frozen so catalog diffs are set operations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: str = Field(description="Logical server name; the namespace of its tools.")
    instance_id: str = Field(description="Unique within the server; the static file uses the server name.")
    transport: Transport
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    timeout: float | None = Field(None, description="Seconds per request; the router default if unset.")
    protocol: UpstreamProtocol | None = None
    tags: tuple[str, ...] = ()
    policy: ServerPolicy = Field(default=ServerPolicy())
    # What the registrar's MCP probe learnt (empty for the static file).
    eras: tuple[str, ...] = Field(default=(), description="Protocol versions the server answered with.")
    capabilities: tuple[str, ...] = Field(default=(), description="Capability names the server advertised.")
    server_info: tuple[tuple[str, str], ...] = Field(default=(), description="serverInfo name/version/title.")
    definitions_hash: str | None = Field(
        default=None, description="sha256 of the canonical definitions served."
    )
    definitions_state: DefinitionsState = "ok"
    pending_hash: str | None = Field(default=None, description="Drifted definitions awaiting approval.")

    @property
    def key(self) -> tuple[str, str]:
        return (self.server, self.instance_id)

    @property
    def servable(self) -> bool:
        """False for a quarantined instance: its changed definitions must not be served."""
        return self.definitions_state != "quarantined"

    def describe(self) -> str:
        """Where the instance lives, without secrets (headers and env are left out)."""
        if self.transport in ("http", "sse"):
            return f"{self.url}"
        return " ".join([self.command or "", *self.args]).strip()


class Catalog(BaseModel):
    """A whole snapshot of what exists: server name -> its instances."""

    model_config = ConfigDict(frozen=True)

    servers: dict[str, tuple[BackendRecord, ...]] = Field(default_factory=dict)
    limits: tuple[LimitRule, ...] = ()
    # Keys of instances the registry still lists but whose health check is not passing: kept
    # connected if already running, out of rotation until the check passes again.
    critical: frozenset[tuple[str, str]] = frozenset()
    # Quarantined instances the registry lists: never served, shown to operators (the console)
    # so they can approve the definitions they are waiting with.
    withheld: tuple[BackendRecord, ...] = ()

    def records(self) -> set[BackendRecord]:
        return {record for instances in self.servers.values() for record in instances}

    @classmethod
    def of(cls, records: Iterable[BackendRecord], critical: Iterable[tuple[str, str]] = ()) -> Catalog:
        """Group instances by server, in a stable order; quarantined instances are left out."""
        servers: dict[str, list[BackendRecord]] = {}
        withheld: list[BackendRecord] = []
        for record in sorted(records, key=lambda r: r.key):
            if record.servable:
                servers.setdefault(record.server, []).append(record)
            else:
                withheld.append(record)
        return cls(
            servers={name: tuple(instances) for name, instances in servers.items()},
            critical=frozenset(critical),
            withheld=tuple(withheld),
        )

    def merged(self, other: Catalog) -> Catalog:
        """Both catalogs' instances and limits (a static file and a registry may be used together)."""
        records = self.records() | other.records() | set(self.withheld) | set(other.withheld)
        both = Catalog.of(records, self.critical | other.critical)
        return both.model_copy(update={"limits": self.limits + other.limits})


# -- definitions ------------------------------------------------------------------------------


def canonical_definitions(
    lists: Mapping[str, Iterable[Mapping[str, Any]]], instructions: str | None = None
) -> bytes:
    """Tools, resources, resource templates and prompts as canonical JSON: sorted keys, items in
    name order, so the same definitions always hash the same whatever order a server lists them.

    The server's `instructions` (what its `initialize` answered) are part of them when it has
    any: they reach the model as surely as a tool's description does (the router forwards them
    to clients in namespaces and indexes them for tool search), so changing them is drift like
    changing a description. A server without instructions hashes as it always did."""
    keys = {"tools": "name", "prompts": "name", "resources": "uri", "resourceTemplates": "uriTemplate"}
    document: dict[str, Any] = {
        kind: sorted((dict(item) for item in lists.get(kind, ())), key=lambda i: str(i.get(field)))
        for kind, field in keys.items()
    }
    if instructions:
        document["instructions"] = instructions
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def definitions_hash(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


# -- registry layout --------------------------------------------------------------------------

DEFAULT_SERVICE = "mcp"
DEFAULT_ETCD_PREFIX = "/toolmesh/"
KV_ROOT = "toolmesh/"
META_LIMIT = 512
META_KEYS = (
    "name", "instance", "path", "scheme", "transport", "eras", "capabilities", "server_name",
    "server_version", "defs_hash", "defs_state", "pending_hash", "protocol",
)  # fmt: skip
CHECK_PASSING_NOTE = "MCP probe answered"


class RecordError(ValueError):
    """A registry entry that is not a valid record (written by something else, or damaged)."""


def definitions_key(digest: str, root: str = KV_ROOT) -> str:
    return f"{root}definitions/{digest}"


def approval_key(server: str, root: str = KV_ROOT) -> str:
    return f"{root}approved/{server}"


def etcd_instance_prefix(prefix: str) -> str:
    return f"{prefix}instances/"


def etcd_instance_key(prefix: str, record: BackendRecord) -> str:
    return f"{etcd_instance_prefix(prefix)}{record.server}/{record.instance_id}"


def consul_service_id(service: str, record: BackendRecord) -> str:
    return f"{service}-{record.server}-{record.instance_id}"


def to_consul_meta(record: BackendRecord) -> dict[str, str]:
    """The record as Consul service meta; every value cut to Consul's 512 characters."""
    assert record.url is not None, "only HTTP instances are registered"
    parts = urlsplit(record.url)
    info = dict(record.server_info)
    meta = {
        "name": record.server,
        "instance": record.instance_id,
        "path": parts.path or "/",
        "scheme": parts.scheme,
        "transport": "sse" if record.transport == "sse" else "streamable-http",
        "eras": ",".join(record.eras),
        "capabilities": ",".join(record.capabilities),
        "server_name": info.get("name", ""),
        "server_version": info.get("version", ""),
        "defs_hash": record.definitions_hash or "",
        "defs_state": record.definitions_state,
        "pending_hash": record.pending_hash or "",
        "protocol": record.protocol or "",
    }
    return {key: value[:META_LIMIT] for key, value in meta.items() if value}


def from_consul(service: Mapping[str, Any], node_address: str) -> BackendRecord:
    """A BackendRecord from a health entry's `Service` (and the node's address as fallback)."""
    meta = service.get("Meta") or {}
    address = service.get("Address") or node_address
    host = f"[{address}]" if ":" in address else address
    url = f"{meta.get('scheme') or 'http'}://{host}:{service.get('Port')}{meta.get('path') or '/mcp'}"
    info = tuple((k, meta[f"server_{k}"]) for k in ("name", "version") if meta.get(f"server_{k}"))
    fields: dict[str, Any] = {
        "server": meta.get("name"),
        "instance_id": meta.get("instance") or service.get("ID"),
        "transport": "sse" if meta.get("transport") == "sse" else "http",
        "url": url,
        "tags": tuple(service.get("Tags") or ()),
        "eras": _split(meta.get("eras")),
        "capabilities": _split(meta.get("capabilities")),
        "server_info": info,
        "definitions_hash": meta.get("defs_hash") or None,
        "definitions_state": meta.get("defs_state") or "ok",
        "pending_hash": meta.get("pending_hash") or None,
        "protocol": meta.get("protocol") or None,
    }
    return _validated(fields, f"Consul service {service.get('ID')!r}")


def to_json(record: BackendRecord) -> bytes:
    return orjson.dumps(record.model_dump(mode="json", exclude_defaults=True))


def from_json(data: bytes, where: str) -> BackendRecord:
    try:
        fields = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"{where}: not JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise RecordError(f"{where}: not a JSON object")
    return _validated(fields, where)


def _validated(fields: dict[str, Any], where: str) -> BackendRecord:
    try:
        record = BackendRecord.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RecordError(f"{where}: field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if not SERVER_NAME.match(record.server) or not INSTANCE_ID.match(record.instance_id):
        raise RecordError(f"{where}: invalid server name or instance id")
    return record


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part for part in (value or "").split(",") if part)
