"""Every fact about the protocol's two eras, in one place: versions, which era a request or a
session is in, the methods and result fields one era has and the other has not, the 2026-07-28
`_meta` envelope and its `Mcp-*` headers.

"legacy" is 2025-11-25 and before: a session opened by `initialize`, named by `Mcp-Session-Id`.
"modern" is 2026-07-28: stateless, each request carries its own envelope and routing headers.
Code elsewhere asks the functions here (`is_modern`, `method_in_era`, ...) instead of comparing
era strings or versions itself, so a third era changes this module and not the request path.

The envelope and routing headers of a 2026-07-28 request are checked in the spec's order:

1. `params._meta` carries the protocol version and client capabilities (else -32602);
2. `MCP-Protocol-Version`, `Mcp-Method` and, for tools/call, prompts/get and resources/read,
   `Mcp-Name` agree with the body, and none of them appears twice (else -32020);
3. the version is one we serve (else -32022 with the supported list).

Kept here rather than imported from the SDK so the router's start-up does not pay for the SDK,
and here rather than in server/ or upstream/ because both use it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeGuard

from router.errors import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    INVALID_REQUEST,
    UNSUPPORTED_PROTOCOL_VERSION,
    RPCError,
)

# "legacy": 2025-11-25 and before (sessions); "modern": 2026-07-28 (stateless).
Era = Literal["legacy", "modern"]
LEGACY: Era = "legacy"
MODERN: Era = "modern"
MODERN_VERSION: Final = "2026-07-28"
LEGACY_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
LATEST_LEGACY_VERSION = LEGACY_VERSIONS[0]
# Session-era versions whose clients resume a POST's stream with Last-Event-ID after the server
# closed it early (polling): their replies are resumable streams.
POLLING_VERSIONS = frozenset({"2025-11-25"})
# Methods one era has and the other does not (2026-07-28 removed ping, logging/setLevel and the
# resource subscriptions; it added discovery and listen streams).
REMOVED_IN_MODERN = frozenset({"ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
ADDED_IN_MODERN = frozenset({"server/discover", "subscriptions/listen"})
# Result fields only the 2026-07-28 era defines; a 2026 backend's results lose them on the way to
# a 2025 client.
MODERN_RESULT_FIELDS = frozenset({"resultType", "ttlMs", "cacheScope"})
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
# The levels `logging/setLevel` (legacy) and the logLevel `_meta` (2026-07-28) take, least first.
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
ENVELOPE_KEYS = frozenset({
    "io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/clientInfo", LOG_LEVEL_KEY,
})  # fmt: skip
PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
PARAM_HEADER_PREFIX = "mcp-param-"
# HTTP status for an error code, as the 2026-07-28 transport defines it.
HTTP_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}

_PLAIN = re.compile(r"[\x20-\x7e]*")
_BASE64 = re.compile(r"=\?base64\?(?P<payload>[A-Za-z0-9+/]*={0,2})\?=")


def is_modern(era: Era) -> bool:
    """The stateless 2026-07-28 era (True) or the session era (False)."""
    return era == MODERN


def is_modern_version(version: object) -> bool:
    return version == MODERN_VERSION


def is_legacy_version(version: object) -> TypeGuard[str]:
    return version in LEGACY_VERSIONS


def resumes_polled_streams(version: object) -> bool:
    """Does a session of this version resume a POST's stream after a polling close?"""
    return version in POLLING_VERSIONS


def era_of_version(version: str) -> Era:
    return MODERN if is_modern_version(version) else LEGACY


def is_modern_request(message: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    """A POSTed message of the 2026-07-28 era: it carries the `_meta` protocol-version envelope,
    or the 2026-07-28 version header without a session id; anything else is the session era."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return (isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta) or is_modern_headers(headers)


def is_modern_headers(headers: Mapping[str, str]) -> bool:
    """A request whose headers alone say 2026-07-28 (GET and DELETE have no body to say it)."""
    return is_modern_version(headers.get("mcp-protocol-version")) and "mcp-session-id" not in headers


def method_in_era(method: str, era: Era) -> bool:
    """False for a method the era does not have (ping in 2026-07-28, server/discover in 2025)."""
    return method not in (REMOVED_IN_MODERN if is_modern(era) else ADDED_IN_MODERN)


def for_era(result: dict[str, Any], era: Era) -> dict[str, Any]:
    """A result as a client of `era` may see it: a legacy client loses the 2026-only fields."""
    if is_modern(era) or "resultType" not in result:
        return result
    return {key: value for key, value in result.items() if key not in MODERN_RESULT_FIELDS}


def speaks_modern(discover_result: object) -> bool:
    """Whether a `server/discover` result says the server speaks 2026-07-28."""
    return isinstance(discover_result, dict) and MODERN_VERSION in discover_result.get(
        "supportedVersions", ()
    )


def envelope(capabilities: Mapping[str, Any], client_info: Mapping[str, Any]) -> dict[str, Any]:
    """The `_meta` envelope a 2026-07-28 request carries."""
    return {
        PROTOCOL_VERSION_KEY: MODERN_VERSION,
        CLIENT_CAPABILITIES_KEY: capabilities,
        CLIENT_INFO_KEY: client_info,
    }


def without_envelope(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """A 2026-07-28 client's `_meta` envelope, removed before the params go to a legacy session."""
    meta = params["_meta"]
    if not isinstance(meta, dict) or ENVELOPE_KEYS.isdisjoint(meta):
        return params
    rest = {key: value for key, value in meta.items() if key not in ENVELOPE_KEYS}
    stripped = {**params, "_meta": rest}
    if not rest:
        del stripped["_meta"]
    return stripped


def legacy_client_envelope(capabilities: Mapping[str, Any], log_level: str | None) -> dict[str, Any]:
    """A legacy client's capabilities and log level as the `_meta` envelope a 2026-07-28 backend
    reads (the upstream session puts it under the client's own `_meta` keys)."""
    return {CLIENT_CAPABILITIES_KEY: capabilities, LOG_LEVEL_KEY: log_level or "debug"}


def routing_headers(method: str, name: Any = None) -> dict[str, str]:
    """The headers a 2026-07-28 request carries: version, method and, if given, the name."""
    headers = {"mcp-protocol-version": MODERN_VERSION, "mcp-method": method}
    if isinstance(name, str):
        headers["mcp-name"] = encode_header_value(name)
    return headers


def name_of(method: str, params: Mapping[str, Any]) -> Any:
    """What the `Mcp-Name` header carries for `method` (None for a method without a name)."""
    key = NAME_BEARING.get(method)
    return params.get(key) if key is not None else None


def session_headers(version: str, session_id: str | None) -> dict[str, str]:
    """The headers every request of a legacy session carries."""
    headers = {"mcp-protocol-version": version}
    if session_id is not None:
        headers["mcp-session-id"] = session_id
    return headers


@dataclass(frozen=True, slots=True)
class Envelope:
    protocol_version: str
    client_capabilities: dict[str, Any]
    client_info: dict[str, Any] | None


def check(
    message: Mapping[str, Any], headers: Mapping[str, str], raw_headers: Sequence[tuple[bytes, bytes]]
) -> Envelope:
    """The request's envelope, or RPCError with the code the spec gives for the first problem.
    `headers` is `raw_headers` as a dict (names lower case): fewer entries means a repeated name."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or PROTOCOL_VERSION_KEY not in meta or CLIENT_CAPABILITIES_KEY not in meta:
        raise RPCError(
            INVALID_PARAMS,
            f"params._meta must carry {PROTOCOL_VERSION_KEY!r} and {CLIENT_CAPABILITIES_KEY!r}",
        )
    version = meta[PROTOCOL_VERSION_KEY]
    _check_headers(message, headers, raw_headers, version)
    if not is_modern_version(version):
        raise RPCError(
            UNSUPPORTED_PROTOCOL_VERSION,
            f"unsupported protocol version {version!r}",
            {"supported": [MODERN_VERSION], "requested": version},
        )
    capabilities = meta[CLIENT_CAPABILITIES_KEY]
    if not isinstance(capabilities, dict):
        raise RPCError(INVALID_PARAMS, f"params._meta[{CLIENT_CAPABILITIES_KEY!r}] must be an object")
    level = meta.get(LOG_LEVEL_KEY)
    if level is not None and level not in LOG_LEVELS:
        raise RPCError(
            INVALID_PARAMS, f"params._meta[{LOG_LEVEL_KEY!r}] must be one of {', '.join(LOG_LEVELS)}"
        )
    info = meta.get(CLIENT_INFO_KEY)
    return Envelope(version, capabilities, info if isinstance(info, dict) else None)


def _check_headers(
    message: Mapping[str, Any],
    headers: Mapping[str, str],
    raw_headers: Sequence[tuple[bytes, bytes]],
    version: Any,
) -> None:
    if len(raw_headers) != len(headers):  # some header came more than once: is it one of ours?
        seen: set[bytes] = set()
        for key, _ in raw_headers:
            if key in (b"mcp-protocol-version", b"mcp-method", b"mcp-name"):
                if key in seen:
                    raise RPCError(HEADER_MISMATCH, f"{key.decode()} header appears more than once")
                seen.add(key)
    if _header(headers, "mcp-protocol-version") != version:
        raise RPCError(HEADER_MISMATCH, "MCP-Protocol-Version header does not match params._meta")
    method = message.get("method")
    if _header(headers, "mcp-method") != method:
        raise RPCError(HEADER_MISMATCH, "Mcp-Method header does not match the body's method")
    name_key = NAME_BEARING.get(method) if isinstance(method, str) else None
    if name_key is not None:
        value = message["params"].get(name_key)
        if value is not None and decode_header_value(_header(headers, "mcp-name")) != value:
            raise RPCError(HEADER_MISMATCH, f"Mcp-Name header does not match the body's {name_key!r}")


def _header(headers: Mapping[str, str], key: str) -> str | None:
    """A header's value without the optional whitespace HTTP allows around it (RFC 9110 5.5)."""
    value = headers.get(key)
    return value.strip(" \t") if value is not None else None


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The `Mcp-Param-*` headers of a 2026-07-28 request, which intermediaries must pass on as-is."""
    if PARAM_HEADER_PREFIX not in "\n".join(headers):  # most requests have none: no loop for them
        return {}
    return {key: value.strip(" \t") for key, value in headers.items() if key.startswith(PARAM_HEADER_PREFIX)}


def encode_header_value(value: str) -> str:
    """Plain printable ASCII as-is; anything else as `=?base64?...?=` so it survives HTTP."""
    if _PLAIN.fullmatch(value) and value == value.strip() and not _BASE64.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode()}?="


def decode_header_value(value: str | None) -> str | None:
    if value is None:
        return None
    match = _BASE64.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group("payload"), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def jsonrpc_problem(message: Any) -> RPCError | None:
    """What makes a POSTed body not one JSON-RPC 2.0 message we take (None: nothing)."""
    if isinstance(message, list):
        return RPCError(
            INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported; send one message"
        )
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return RPCError(
            INVALID_REQUEST, 'Invalid Request: expected a JSON-RPC 2.0 object with "jsonrpc": "2.0"'
        )
    method = message.get("method")
    if method is None:
        if "id" in message and ("result" in message or "error" in message):
            return None  # a response to a server-to-client request
        return RPCError(INVALID_REQUEST, "Invalid Request: `method` is required")
    if not isinstance(method, str):
        return RPCError(INVALID_REQUEST, "Invalid Request: `method` must be a string")
    if "params" in message and not isinstance(message["params"], dict):
        return RPCError(INVALID_REQUEST, "Invalid Request: `params` must be an object")
    request_id = message.get("id", 0)
    if request_id is None or isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return RPCError(INVALID_REQUEST, "Invalid Request: `id` must be a string or an integer")
    return None
