"""The static catalog file: the `mcpServers` JSON that Claude Desktop, Cursor and `.mcp.json` use.

Accepted as-is. Per server, either a stdio entry (`command`, `args`, `env`, `cwd`) or a remote
entry (`url`, `headers`, or several `instances` of one remote server), plus toolmesh's optional
fields `timeout`, `disabled`, `tags`, `protocol`, the call policy (`trusted`, `tools`,
`max_concurrency`, `max_queue`, `limits`, the output limit `max_result_bytes`,
`max_result_tokens`, `over_limit`; see router.catalog.server_rules), and the backend's own
credentials `bearerTokenEnv` / `bearerTokenFile` (sent as `Authorization: Bearer ...`; header
values may also use `${VAR}` and `${file:/path}`). Agents' tokens never reach a backend: the
router sends only what the entry configures. A top-level `toolmesh` object may hold `limits`
that span servers. `"type": "sse"` marks a remote server that speaks the 2024-11-05 HTTP+SSE
transport (`url` is its event stream); other values of `type`, and other clients' fields
(`autoApprove`, ...), are accepted and ignored;
a field nobody knows is logged with the closest known name. A malformed file raises ConfigError
naming the server, the field and the fix.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.catalog.record import SERVER_NAME, BackendRecord, Catalog
from router.catalog.server_rules import (
    BackendIdentity,
    Cost,
    Credential,
    LimitRule,
    ServerPolicy,
    ToolPolicy,
    split_key,
)
from router.errors import ConfigError

log = logging.getLogger("toolmesh.catalog")

# Keys written by other MCP clients into the same file; meaningful to them, not to us.
FOREIGN_KEYS = frozenset(
    {"type", "transport", "autoApprove", "alwaysAllow", "description", "name", "envFile", "note", "icon"}
)


def _check_url(url: str | None) -> str | None:
    """A URL that starts with a `${...}` reference is checked once expanded (`_expanded_url`)."""
    if url is not None and not url.startswith(("http://", "https://", "${")):
        raise ValueError("must start with http:// or https://")
    return url


def _expanded_url(name: str, url: str) -> str:
    where = f"server '{name}', field 'url'"
    expanded = _expand(where, url)
    if not expanded.startswith(("http://", "https://")):
        raise ConfigError(  # the expanded value is not shown: it may hold a credential
            where, f"{url!r} does not expand to an http:// or https:// URL", "check the variable's value"
        )
    return expanded


class InstanceEntry(BaseModel):
    """One copy of a remote server, for `instances` (toolmesh's extension)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    id: str | None = Field(None, min_length=1, max_length=128)
    headers: dict[str, str] = Field(default_factory=dict)

    _url = field_validator("url")(_check_url)


class CredentialEntry(BaseModel):
    """Under `credentials`: other headers for calls made for some agents or groups."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    agents: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token_env: str | None = Field(None, alias="bearerTokenEnv", min_length=1)
    bearer_token_file: str | None = Field(None, alias="bearerTokenFile", min_length=1)
    bearer_token_key: str | None = Field(None, alias="bearerTokenKey", min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> CredentialEntry:
        if not self.agents and not self.groups:
            raise ValueError("a credential names the `agents` and/or `groups` whose calls use it")
        sources = [self.bearer_token_env, self.bearer_token_file, self.bearer_token_key]
        if not (self.headers or any(sources)):
            raise ValueError(
                "a credential gives `headers`, `bearerTokenEnv`, `bearerTokenFile` or `bearerTokenKey`"
            )
        if sum(source is not None for source in sources) > 1:
            raise ValueError("give one of bearerTokenEnv, bearerTokenFile, bearerTokenKey")
        if self.bearer_token_key is not None:
            split_key(self.bearer_token_key)  # a ValueError naming the expected form
        return self


class LimitEntry(BaseModel):
    """A rate limit written under a server (its `server` is implied) or under `toolmesh.limits`."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0)
    period: float = Field(1.0, gt=0)
    burst: int | None = Field(None, ge=1)
    server: str | None = None
    tool: str | None = None
    per: list[Literal["agent", "server", "tool"]] = Field(default_factory=list)


class ServerEntry(BaseModel):
    """One entry under `mcpServers`."""

    model_config = ConfigDict(extra="allow")

    command: str | None = Field(None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(None, gt=0)
    disabled: bool = False
    tags: list[str] = Field(default_factory=list)
    protocol: Literal["auto", "legacy", "2026-07-28"] | None = None
    type: str | None = None
    bearer_token_env: str | None = Field(None, alias="bearerTokenEnv", min_length=1)
    bearer_token_file: str | None = Field(None, alias="bearerTokenFile", min_length=1)
    instances: list[InstanceEntry] | None = Field(None, min_length=1)
    trusted: bool = False
    tools: dict[str, ToolPolicy] = Field(default_factory=dict)
    max_concurrency: int | None = Field(None, ge=1)
    max_queue: int | None = Field(None, ge=0)
    limits: list[LimitEntry] = Field(default_factory=list)
    max_result_bytes: int | None = Field(None, ge=0)
    max_result_tokens: int | None = Field(None, ge=0)
    over_limit: Literal["truncate", "refuse"] | None = None
    cost: Cost | None = None
    identity: bool | BackendIdentity = False
    credentials: list[CredentialEntry] = Field(default_factory=list)

    _url = field_validator("url")(_check_url)

    @model_validator(mode="after")
    def _one_transport(self) -> ServerEntry:
        given = [self.command is not None, self.url is not None, self.instances is not None]
        if sum(given) != 1:
            raise ValueError(
                "give either `command` (a stdio server) or `url` (a remote server; `instances` for "
                "several copies of one), not both or none"
            )
        if (self.bearer_token_env or self.bearer_token_file) and self.url is None and self.instances is None:
            raise ValueError("bearerTokenEnv/bearerTokenFile apply to remote (`url`) servers only")
        if self.bearer_token_env and self.bearer_token_file:
            raise ValueError("give bearerTokenEnv or bearerTokenFile, not both")
        ids = [instance.id for instance in self.instances or () if instance.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("two `instances` share an `id`; give each a unique one or none")
        if self.type == "sse" and self.command is not None:
            raise ValueError(
                "`type: sse` (the HTTP+SSE transport) needs the `url` of the server's event stream"
            )
        return self

    def unknown_keys(self) -> list[str]:
        return [key for key in (self.model_extra or {}) if key not in FOREIGN_KEYS]


def parse_catalog(data: bytes, source: str = "catalog") -> Catalog:
    """Parse catalog JSON into a Catalog, or raise ConfigError saying exactly what to fix."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(source, f"not valid JSON: {exc}", "fix the JSON syntax") from None
    if not isinstance(document, dict) or not isinstance(document.get("mcpServers"), dict):
        raise ConfigError(
            source, "no `mcpServers` object", 'the file must look like {"mcpServers": {"name": {...}}}'
        )
    servers: dict[str, tuple[BackendRecord, ...]] = {}
    limits: list[LimitRule] = _global_limits(source, document.get("toolmesh"))
    for name, raw in document["mcpServers"].items():
        entry = _parse_entry(source, name, raw)
        if not entry.disabled:
            servers[name] = _to_records(name, entry)
            limits += [_rule(limit, server=name) for limit in entry.limits]
    return Catalog(servers=servers, limits=tuple(limits))


def _global_limits(source: str, section: Any) -> list[LimitRule]:
    if section is None:
        return []
    where = f"{source}: toolmesh.limits"
    if not isinstance(section, dict) or not isinstance(section.get("limits", []), list):
        raise ConfigError(where, "must be a list of limits", 'e.g. {"toolmesh": {"limits": [{"rate": 10}]}}')
    rules = []
    for position, raw in enumerate(section.get("limits", [])):
        try:
            rules.append(_rule(LimitEntry.model_validate(raw)))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "entry"
            raise ConfigError(
                f"{where}[{position}], field '{field}'", first["msg"], _fix_for("limits")
            ) from None
    return rules


def _rule(entry: LimitEntry, server: str | None = None) -> LimitRule:
    return LimitRule(
        rate=entry.rate,
        period=entry.period,
        burst=entry.burst,
        server=server or entry.server,
        tool=entry.tool,
        per=tuple(entry.per),
    )


def load_catalog_file(path: Path) -> Catalog:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            str(path), f"cannot read the catalog file: {exc.strerror}", "check the path"
        ) from None
    return parse_catalog(data, str(path))


def _parse_entry(source: str, name: str, raw: Any) -> ServerEntry:
    where = f"{source}: server '{name}'"
    if not SERVER_NAME.match(name):
        raise ConfigError(
            where,
            "invalid server name",
            "use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit",
        )
    if not isinstance(raw, dict):
        raise ConfigError(where, "entry must be an object", 'e.g. {"command": "npx", "args": [...]}')
    try:
        entry = ServerEntry.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        problem = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a rule across fields: its message says what to change
            raise ConfigError(where, problem) from None
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{where}, field '{field}'", problem, _fix_for(field)) from None
    for key in entry.unknown_keys():
        close = difflib.get_close_matches(key, list(ServerEntry.model_fields), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        log.warning("catalog field ignored", extra={"server": name, "field": key, "hint": hint.lstrip("; ")})
    return entry


def _fix_for(field: str) -> str:
    fixes = {
        "command": "set `command` to the program that starts the server",
        "url": "set `url` to the server's Streamable HTTP endpoint, e.g. http://host:port/mcp",
        "args": "`args` is a list of strings",
        "env": "`env` maps variable names to string values",
        "headers": "`headers` maps header names to string values",
        "timeout": "`timeout` is a positive number of seconds",
        "protocol": "use auto, legacy or 2026-07-28",
        "bearerTokenEnv": "name an environment variable holding the backend's token",
        "bearerTokenFile": "give the path of a file holding the backend's token",
        "instances": 'a list of {"url": ..., "id": ..., "headers": {...}}, each a copy of the server',
        "tools": '`tools` maps tool names to {"timeout": seconds, "retry": "safe" or "never"}',
        "limits": 'a list of {"rate": n, "period": seconds, "burst": n, "tool": name, "per": ["agent"]}',
        "max_concurrency": "a positive number of calls in flight per instance",
        "max_queue": "a number of calls that may wait for a slot (0: none wait)",
        "credentials": 'a list of {"groups": [...], "agents": [...], "headers": {...}} or bearerTokenEnv/File',
        "identity": 'true, or {"audience": ..., "header": ...}: the router signs a JWT per request',
    }
    return fixes.get(field.split(".", maxsplit=1)[0], "see docs/configuration.md for the catalog format")


_VARIABLE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}")
_FILE = re.compile(r"\$\{file:([^}]+)\}")


def _expand(where: str, value: str) -> str:
    """`${NAME}` (or Cursor's `${env:NAME}`) from the router's environment, and `${file:/path}` from
    a file (e.g. a mounted secret; its content, without the trailing newline), so secrets stay out
    of the catalog."""

    def lookup(match: re.Match[str]) -> str:
        variable = match.group(1)
        if variable not in os.environ:
            raise ConfigError(where, f"environment variable {variable} is not set", f"export {variable}")
        return os.environ[variable]

    return _FILE.sub(lambda match: _read_secret(where, match.group(1)), _VARIABLE.sub(lookup, value))


def _read_secret(where: str, path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(
            where, f"cannot read {path}: {exc.strerror}", "check the path and its permissions"
        ) from None


def _credential_headers(name: str, entry: ServerEntry) -> dict[str, str]:
    where = f"server '{name}'"
    if entry.bearer_token_env:
        token = _expand(f"{where}, field 'bearerTokenEnv'", "${" + entry.bearer_token_env + "}")
    elif entry.bearer_token_file:
        token = _read_secret(f"{where}, field 'bearerTokenFile'", entry.bearer_token_file)
    else:
        return {}
    return {"Authorization": f"Bearer {token}"}


def _credentials(name: str, entry: ServerEntry) -> tuple[Credential, ...]:
    if entry.credentials and entry.command is not None:
        raise ConfigError(
            f"server '{name}', field 'credentials'", "a stdio server gets no request headers",
            "use `credentials` with remote (`url`) servers only (a stdio child's `env` is per entry)",
        )  # fmt: skip
    out = []
    for n, credential in enumerate(entry.credentials):
        where = f"server '{name}', field 'credentials.{n}"
        headers = {
            key: _expand(f"{where}.headers.{key}'", value) for key, value in credential.headers.items()
        }
        if credential.bearer_token_env:
            token = _expand(f"{where}.bearerTokenEnv'", "${" + credential.bearer_token_env + "}")
            headers["Authorization"] = f"Bearer {token}"
        elif credential.bearer_token_file:
            secret = _read_secret(f"{where}.bearerTokenFile'", credential.bearer_token_file)
            headers["Authorization"] = f"Bearer {secret}"
        out.append(
            Credential(
                agents=tuple(credential.agents),
                groups=tuple(credential.groups),
                headers=tuple(sorted(headers.items())),
                key=credential.bearer_token_key,
            )
        )
    return tuple(out)


def _identity(name: str, entry: ServerEntry) -> BackendIdentity | None:
    if entry.identity is False:
        return None
    identity = BackendIdentity() if entry.identity is True else entry.identity
    if entry.command is not None:
        raise ConfigError(
            f"server '{name}', field 'identity'", "a stdio server gets no request headers",
            "use `identity` with remote (`url`) servers only",
        )  # fmt: skip
    own = {key.lower() for key in entry.headers} | {
        key.lower() for instance in entry.instances or () for key in instance.headers
    }
    if entry.bearer_token_env or entry.bearer_token_file:
        own.add("authorization")
    if identity.header.lower() in own:
        raise ConfigError(
            f"server '{name}', field 'identity'",
            f"the entry already sends its own {identity.header} header",
            'name another header for the router\'s token, e.g. "identity": {"header": "X-Toolmesh-Identity"}',
        )
    return identity


def _to_records(name: str, entry: ServerEntry) -> tuple[BackendRecord, ...]:
    """One record per instance: the entry itself, or each of its `instances` (ids default to #n)."""
    if entry.instances is None:
        return (_to_record(name, entry, name, entry.url, entry.headers),)
    return tuple(
        _to_record(
            name, entry, instance.id or f"{name}#{n}", instance.url, {**entry.headers, **instance.headers}
        )
        for n, instance in enumerate(entry.instances, start=1)
    )


def _to_record(
    name: str, entry: ServerEntry, instance_id: str, url: str | None, headers: dict[str, str]
) -> BackendRecord:
    def expand_all(field: str, items: dict[str, str]) -> tuple[tuple[str, str], ...]:
        where = f"server '{name}', field '{field}'"
        return tuple(sorted((key, _expand(f"{where}.{key}", value)) for key, value in items.items()))

    return BackendRecord(
        server=name,
        instance_id=instance_id,
        transport="stdio" if entry.command else "sse" if entry.type == "sse" else "http",
        url=_expanded_url(name, url) if url else None,
        headers=expand_all("headers", {**headers, **_credential_headers(name, entry)}),
        command=entry.command,
        args=tuple(_expand(f"server '{name}', field 'args'", arg) for arg in entry.args),
        env=expand_all("env", entry.env),
        cwd=entry.cwd,
        timeout=entry.timeout,
        protocol=entry.protocol,
        tags=tuple(entry.tags),
        policy=ServerPolicy(
            trusted=entry.trusted,
            tools=tuple(sorted(entry.tools.items())),
            max_concurrency=entry.max_concurrency,
            max_queue=entry.max_queue,
            max_result_bytes=entry.max_result_bytes,
            max_result_tokens=entry.max_result_tokens,
            over_limit=entry.over_limit,
            cost=entry.cost,
            identity=_identity(name, entry),
            credentials=_credentials(name, entry),
        ),
    )
