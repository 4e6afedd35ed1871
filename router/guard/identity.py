"""Who is calling: API keys, JWT bearer tokens, and the OAuth 2.1 resource-server surface.

Every HTTP request to `/mcp` is authenticated once into an `Agent` (id + groups, `agent.py`),
which travels in the CallContext; nothing below the server layer sees a token. Credentials come in the
`Authorization: Bearer <token>` header:

- API keys look like `tmk_<id>_<secret>`. The keys file holds only a SHA-256 of each key (the
  secret has 256 bits of entropy, so a slow hash would add latency without adding safety); it is
  re-read in the background when it changes, so `toolmesh keys revoke` takes effect live.
- Anything else is a JWT, checked by `router.guard.tokens` (imported only when a JWT setting is
  present: PyJWT pulls in `cryptography`, a tenth of start-up).

A missing or bad credential is an AuthError; the endpoint answers 401 with
`WWW-Authenticate: Bearer resource_metadata="..."` pointing at the protected resource metadata
(RFC 9728) that `protected_resource_metadata()` builds.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import anyio
import orjson

from router.errors import ConfigError
from router.guard.agent import ANONYMOUS, Agent, AuthError

if TYPE_CHECKING:
    from router.guard.tokens import JwtVerifier

log = logging.getLogger("toolmesh.guard")

KEY_PREFIX = "tmk_"
Anonymous = Literal["never", "loopback", "always"]


# -- API keys -----------------------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True)
class KeyEntry:
    id: str
    agent: str
    groups: list[str]
    sha256: str
    created: str
    revoked: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id, "agent": self.agent, "groups": self.groups, "sha256": self.sha256,
            "created": self.created,
        }  # fmt: skip
        if self.revoked:
            entry["revoked"] = self.revoked
        return entry


class KeyStore:
    """The keys file: `{"keys": [{"id", "agent", "groups", "sha256", "created", "revoked"?}]}`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_id: dict[str, KeyEntry] = {}
        self._agents: dict[str, Agent] = {}
        self._stamp: tuple[float, int] | None = None

    # Reading (router side) -----------------------------------------------------------------

    def load(self) -> bool:
        """Re-read the file if it changed; True if it did. Blocking: call it from a thread."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            changed = bool(self._by_id)
            self._by_id, self._agents, self._stamp = {}, {}, None
            return changed
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return False
        self._by_id = {entry.id: entry for entry in self._read()}
        self._agents = {}
        self._stamp = stamp
        return True

    def _read(self) -> list[KeyEntry]:
        try:
            document = orjson.loads(self.path.read_bytes()) if self.path.exists() else {"keys": []}
            return [KeyEntry(**raw) for raw in document.get("keys", [])]
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise ConfigError(str(self.path), f"not a toolmesh keys file: {exc}", "recreate it") from None

    def verify(self, token: str) -> Agent:
        """The agent a key belongs to; AuthError if it is unknown, wrong or revoked."""
        key_id, _, secret = token[len(KEY_PREFIX) :].partition("_")
        entry = self._by_id.get(key_id)
        # Compare against a dummy digest for unknown ids too, so timing does not tell ids apart.
        expected = entry.sha256 if entry is not None else "0" * 64
        if not hmac.compare_digest(_digest(secret), expected) or entry is None:
            raise AuthError("invalid_key", "unknown API key")
        if entry.revoked:
            raise AuthError("revoked_key", "this API key was revoked")
        agent = self._agents.get(key_id)
        if agent is None:  # one object per key, so per-agent caches downstream hit by identity
            agent = self._agents[key_id] = Agent(entry.agent, frozenset(entry.groups), "api_key")
        return agent

    # Writing (CLI side) --------------------------------------------------------------------

    def create(self, agent: str, groups: list[str]) -> tuple[KeyEntry, str]:
        """Add a key for `agent`; returns the entry and the key itself (shown once, never stored)."""
        entries = self._read()
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        entry = KeyEntry(key_id, agent, sorted(set(groups)), _digest(secret), _now())
        self._write([*entries, entry])
        return entry, f"{KEY_PREFIX}{key_id}_{secret}"

    def revoke(self, key_id: str) -> KeyEntry:
        entries = self._read()
        for entry in entries:
            if entry.id == key_id:
                entry.revoked = entry.revoked or _now()
                self._write(entries)
                return entry
        known = ", ".join(entry.id for entry in entries) or "none"
        raise ConfigError(f"key '{key_id}'", "no such key", f"known ids: {known}")

    def entries(self) -> list[KeyEntry]:
        return self._read()

    def _write(self, entries: list[KeyEntry]) -> None:
        """Write atomically (temp file + rename) and readable by the owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = orjson.dumps({"keys": [entry.to_json() for entry in entries]}, option=orjson.OPT_INDENT_2)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        temporary.replace(self.path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the front door -----------------------------------------------------------------------------


@dataclass(slots=True)
class Authenticator:
    """Turns a request's headers and peer address into an Agent, or raises AuthError."""

    anonymous: Anonymous = "loopback"
    keys: KeyStore | None = None
    jwt: JwtVerifier | None = None
    resource_url: str | None = None
    authorization_servers: list[str] = field(default_factory=list)

    @property
    def configured(self) -> bool:
        """True if any credential is accepted at all (else only anonymous access exists)."""
        return self.keys is not None or self.jwt is not None

    async def authenticate(self, headers: Mapping[str, str], client: tuple[str, int] | None) -> Agent:
        authorization = headers.get("authorization")
        if authorization is None:
            if self.anonymous == "always" or (self.anonymous == "loopback" and _loopback(client)):
                return ANONYMOUS
            raise AuthError("missing", "authentication required: send Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("invalid_token", "use the Bearer scheme: Authorization: Bearer <token>")
        if token.startswith(KEY_PREFIX):
            if self.keys is None:
                raise AuthError("invalid_key", "API keys are not enabled on this router")
            return self.keys.verify(token)
        if self.jwt is None:
            raise AuthError("invalid_token", "bearer tokens are not enabled on this router")
        return await self.jwt.verify(token)

    def metadata_url(self, scheme: str, headers: Mapping[str, str]) -> str:
        """Where the resource metadata is: from `auth_resource_url` when it is set (RFC 9728's
        form: the well-known path between its host and its path), else from the request."""
        if self.resource_url:
            resource = urlsplit(self.resource_url)
            suffix = resource.path.rstrip("/")
            return f"{resource.scheme}://{resource.netloc}/.well-known/oauth-protected-resource{suffix}"
        return f"{_origin(scheme, headers)}/.well-known/oauth-protected-resource"

    def challenge(self, scheme: str, headers: Mapping[str, str], error: AuthError) -> bytes:
        """The `WWW-Authenticate` value for a 401 (RFC 6750 + RFC 9728); `scheme` is the request
        scope's, which only a trusted proxy's X-Forwarded-Proto can change."""
        parts = [f'resource_metadata="{self.metadata_url(scheme, headers)}"']
        if error.reason != "missing":
            description = error.description.replace('"', "'")
            parts.append(f'error="invalid_token", error_description="{description}"')
        return ("Bearer " + ", ".join(parts)).encode("latin-1", "replace")

    def protected_resource_metadata(self, scheme: str, headers: Mapping[str, str]) -> dict[str, Any]:
        """RFC 9728 metadata: which resource this is and who issues tokens for it."""
        metadata: dict[str, Any] = {
            "resource": self.resource_url or f"{_origin(scheme, headers)}/mcp",
            "bearer_methods_supported": ["header"],
            "resource_name": "toolmesh",
        }
        if self.authorization_servers:
            metadata["authorization_servers"] = self.authorization_servers
        if self.jwt is not None:
            metadata["resource_signing_alg_values_supported"] = self.jwt.config.algorithms
        return metadata

    async def refresh_keys(self) -> None:
        if self.keys is not None:
            try:
                if await anyio.to_thread.run_sync(self.keys.load):
                    log.info("API keys loaded", extra={"path": str(self.keys.path)})
            except ConfigError as exc:
                log.error("keys file unreadable; keeping the keys we had", extra={"reason": str(exc)})

    async def close(self) -> None:
        if self.jwt is not None and self.jwt.jwks is not None:
            await self.jwt.jwks.close()


def _loopback(client: tuple[str, int] | None) -> bool:
    return client is not None and _is_loopback_host(client[0])


@functools.lru_cache(maxsize=1024)
def _is_loopback_host(host: str) -> bool:
    """Cached: parsing the address cost more than the rest of anonymous authentication."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(scheme: str, headers: Mapping[str, str]) -> str:
    """This router's origin as the client reached it. The scheme is the connection's (or a trusted
    proxy's X-Forwarded-Proto, applied to the scope by the HTTP layer), never a header any client
    can send: a stranger must not make the challenge point at a URL of its choosing."""
    return f"{scheme}://{headers.get('host', 'localhost')}"
