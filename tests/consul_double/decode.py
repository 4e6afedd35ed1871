"""Decoding and validation of ``PUT /v1/agent/service/register`` bodies.

Consul decodes request bodies with Go's ``encoding/json`` (field names match
case-insensitively, so py-consul's ``{"name": ..., "checks": [{"ttl": "10s"}]}`` works) and
also accepts snake_case aliases such as ``deregister_critical_service_after``. The
validation order and the error texts below follow Consul's agent endpoint so that callers
see the same 400 bodies they would see in production.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .durations import DurationError, duration_field

META_MAX_PAIRS = 64
META_KEY_MAX_LENGTH = 128
META_VALUE_MAX_LENGTH = 512
META_RESERVED_PREFIX = "consul-"
_META_KEY_FORMAT = re.compile(r"^[a-zA-Z0-9_-]+$")
_VALID_STATUSES = frozenset({"passing", "warning", "critical"})
_ANY_ADDRESSES = frozenset({"0.0.0.0", "::", "[::]"})

# Check kinds that need the agent to run a probe. The double only runs TTL checks, so
# these are rejected with a clear 400 instead of being accepted and silently never run.
_PROBE_CHECK_FIELDS: dict[str, str] = {
    "http": "HTTP",
    "tcp": "TCP",
    "udp": "UDP",
    "grpc": "gRPC",
    "h2ping": "H2PING",
    "args": "script",
    "scriptargs": "script",
    "script": "script",
    "dockercontainerid": "Docker",
    "osservice": "OSService",
    "aliasnode": "alias",
    "aliasservice": "alias",
}


class DecodeError(ValueError):
    """A registration body Consul would refuse; ``str(err)`` is the full 400 body."""


@dataclass(frozen=True, slots=True)
class CheckDefinition:
    """A TTL check as given in a service registration (Check or one of Checks)."""

    check_id: str
    name: str
    notes: str
    status: str
    ttl: float
    deregister_critical_after: float


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    """A validated agent service registration."""

    id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] | None
    meta: dict[str, str] | None
    weights: tuple[int, int]
    enable_tag_override: bool
    checks: tuple[CheckDefinition, ...]


def _fold(key: str) -> str:
    """Fold a JSON field name so "DeregisterCriticalServiceAfter", "deregistercriticalserviceafter"
    and "deregister_critical_service_after" all compare equal, as Consul's decoder allows."""
    return key.replace("_", "").lower()


def _fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Index a JSON object by folded field name; with duplicates the last one wins, as in Go."""
    return {_fold(key): value for key, value in obj.items()}


def _string(fields: Mapping[str, Any], name: str, label: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"Request decode failed: {label}: expected a string, got {type(value).__name__}")
    return value


def _int(fields: Mapping[str, Any], name: str, label: str) -> int:
    value = fields.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise DecodeError(f"Request decode failed: {label}: expected an integer, got {value!r}")
    return int(value)


def _duration(fields: Mapping[str, Any], name: str, label: str) -> float:
    value = fields.get(name)
    if value is None or value == "":
        return 0.0
    try:
        return duration_field(value, label)
    except (DurationError, ValueError) as exc:
        raise DecodeError(f"Request decode failed: {exc}") from exc


def validate_service_meta(meta: Mapping[str, str]) -> None:
    """Apply Consul's service-meta limits; the texts are Consul's (including its "Node
    metadata" wording, which Consul shares between nodes and services)."""
    if len(meta) > META_MAX_PAIRS:
        raise DecodeError(
            f"Invalid Service Meta: Node metadata cannot contain more than {META_MAX_PAIRS} key/value pairs"
        )
    for key in sorted(meta):
        value = meta[key]
        problem = None
        if key == "":
            problem = "Key cannot be blank"
        elif not _META_KEY_FORMAT.match(key):
            problem = "Key contains invalid characters"
        elif len(key) > META_KEY_MAX_LENGTH:
            problem = f"Key is too long (limit: {META_KEY_MAX_LENGTH} characters)"
        elif key.startswith(META_RESERVED_PREFIX):
            problem = f"Key prefix '{META_RESERVED_PREFIX}' is reserved for internal use"
        elif len(value) > META_VALUE_MAX_LENGTH:
            problem = f"Value is too long (limit: {META_VALUE_MAX_LENGTH} characters)"
        if problem is not None:
            raise DecodeError(
                f"Invalid Service Meta: Couldn't load metadata pair ('{key}', '{value}'): {problem}"
            )


def _decode_check(raw: Any) -> CheckDefinition | None:
    """Decode one check; None for an empty object, which Consul ignores."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise DecodeError("Request decode failed: Check: expected an object")
    if not raw:
        return None
    fields = _fields(raw)
    for field, kind in _PROBE_CHECK_FIELDS.items():
        if fields.get(field):
            raise DecodeError(
                f"Invalid check: the toolmesh Consul double only runs TTL checks; {kind} checks are not supported"
            )
    ttl = _duration(fields, "ttl", "TTL")
    interval = _duration(fields, "interval", "Interval")
    if interval > 0 and ttl > 0:
        raise DecodeError("Invalid check: Interval and TTL cannot both be specified")
    if ttl <= 0:
        raise DecodeError("Invalid check: TTL must be > 0 for TTL checks")
    check_id = _string(fields, "checkid", "CheckID") or _string(fields, "id", "ID")
    return CheckDefinition(
        check_id=check_id,
        name=_string(fields, "name", "Name"),
        notes=_string(fields, "notes", "Notes"),
        status=_string(fields, "status", "Status"),
        ttl=ttl,
        deregister_critical_after=_duration(
            fields, "deregistercriticalserviceafter", "DeregisterCriticalServiceAfter"
        ),
    )


def _decode_tags(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise DecodeError("Request decode failed: Tags: expected a list of strings")
    return tuple(raw)


def _decode_meta(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(isinstance(v, str) for v in raw.values()):
        raise DecodeError("Request decode failed: Meta: expected an object of strings")
    return dict(raw)


def _decode_weights(raw: Any) -> tuple[int, int]:
    """Consul's ValidateWeights; an absent Weights means the agent default {1, 1}."""
    if raw is None:
        return (1, 1)
    if not isinstance(raw, Mapping):
        raise DecodeError("Request decode failed: Weights: expected an object")
    fields = _fields(raw)
    passing, warning = _int(fields, "passing", "Weights.Passing"), _int(fields, "warning", "Weights.Warning")
    if passing < 1:
        raise DecodeError("Invalid Weights: Passing must be greater than 0")
    if warning < 0:
        raise DecodeError("Invalid Weights: Warning must be greater or equal than 0")
    if passing > 65535 or warning > 65535:
        raise DecodeError("Invalid Weights: DNS Weight must be between 0 and 65535")
    return (passing, warning)


def _decode_checks(single: Any, many: Any) -> tuple[CheckDefinition, ...]:
    """Check followed by Checks, in that order (it decides the ``service:<ID>:<n>`` numbering)."""
    checks: list[CheckDefinition] = []
    decoded = _decode_check(single)
    if decoded is not None:
        checks.append(decoded)
    if many is not None:
        if not isinstance(many, list):
            raise DecodeError("Request decode failed: Checks: expected a list")
        for raw in many:
            decoded = _decode_check(raw)
            if decoded is None:
                raise DecodeError("Invalid check: TTL must be > 0 for TTL checks")
            checks.append(decoded)
    for check in checks:
        if check.status and check.status not in _VALID_STATUSES:
            raise DecodeError("Status for checks must 'passing', 'warning', 'critical'")
    return tuple(checks)


def decode_service_definition(body: Any) -> ServiceDefinition:
    """Validate a decoded JSON registration body in Consul's order; raise DecodeError."""
    if not isinstance(body, Mapping):
        raise DecodeError("Request decode failed: expected a JSON object")
    fields = _fields(body)
    tags = _decode_tags(fields.get("tags"))
    meta = _decode_meta(fields.get("meta"))
    name = _string(fields, "name", "Name")
    if not name:
        raise DecodeError("Missing service name")
    address = _string(fields, "address", "Address")
    if address in _ANY_ADDRESSES:
        raise DecodeError("Invalid service address")
    weights = _decode_weights(fields.get("weights"))
    if meta:
        validate_service_meta(meta)
    kind = _string(fields, "kind", "Kind")
    if kind:
        raise DecodeError(f"Invalid service: the toolmesh Consul double does not support Kind {kind!r}")
    checks = _decode_checks(fields.get("check"), fields.get("checks"))
    connect = fields.get("connect")
    if isinstance(connect, Mapping) and _fields(connect).get("sidecarservice"):
        raise DecodeError("Invalid SidecarService: the toolmesh Consul double does not support Connect")
    enable_tag_override = fields.get("enabletagoverride", False)
    if not isinstance(enable_tag_override, bool):
        raise DecodeError("Request decode failed: EnableTagOverride: expected a boolean")
    return ServiceDefinition(
        id=_string(fields, "id", "ID") or name,
        name=name,
        address=address,
        port=_int(fields, "port", "Port"),
        tags=tags,
        meta=meta,
        weights=weights,
        enable_tag_override=enable_tag_override,
        checks=checks,
    )
