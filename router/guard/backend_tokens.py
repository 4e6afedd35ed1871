"""Who a call is for, told to a backend in a way it can verify: a short-lived JWT the router signs.

A backend opts in in its catalog entry (`"identity": true`, or `{"audience": ..., "header": ...}`).
Each request the router sends it then carries a token (ES256, `Authorization: Bearer` unless the
entry names another header) with `iss` the router (`identity_issuer`), `aud` the backend (its
server name unless the entry says), `sub` the agent, `groups`, `namespace` (when the call came
through `/mcp/{name}`), `rid` (the request id) and `exp` within `identity_token_seconds` (at most
60). The agent's own token never goes upstream.

Keys: the router publishes its public keys at `/.well-known/jwks.json`. A key is published one
rotation before it signs (`next`), signs for one rotation period (`signing`), and stays published
after it stopped signing until the last token it signed has expired (`retired`), so a backend
that caches the JWKS for up to a rotation period verifies every token, and a rotation while calls
are in flight loses none. The key set lives in a `KeyShare`: in memory for one replica, the
cluster's NATS KV with `--nats` (router/cluster/identity_keys.py), so replicas sign with the same
keys and publish the same set.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio
import jwt
from anyio.abc import TaskGroup
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from router.catalog.record import BackendRecord
from router.catalog.server_rules import BackendIdentity
from router.lifecycle import Service

State = Literal["next", "signing", "retired"]
LEEWAY = 30.0  # seconds a retired key outlives its last token (clock skew between router and backend)


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    pem: str  # the private key, PKCS8 PEM
    state: State
    retired_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kid": self.kid, "pem": self.pem, "state": self.state, "retired_at": self.retired_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Key:
        return cls(str(data["kid"]), str(data["pem"]), data["state"], data.get("retired_at"))


def new_key(state: State) -> Key:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Key(secrets.token_urlsafe(12), pem, state)


def rotated(keys: list[Key], now: float, token_seconds: float) -> list[Key]:
    """The key set after one rotation: `next` signs, `signing` retires, a new `next` is made, and
    retired keys whose last token has expired are dropped."""
    out: list[Key] = []
    for key in keys:
        if key.state == "retired":
            if key.retired_at is not None and now - key.retired_at < token_seconds + LEEWAY:
                out.append(key)
        elif key.state == "signing":
            out.append(Key(key.kid, key.pem, "retired", now))
        else:
            out.append(Key(key.kid, key.pem, "signing"))
    if not any(key.state == "signing" for key in out):
        out.append(new_key("signing"))
    out.append(new_key("next"))
    return out


class KeyShare(Protocol):
    """Where the key set lives (shared by replicas with --nats)."""

    async def load(self) -> list[Key] | None: ...

    async def rotate(self, change: Callable[[list[Key] | None], list[Key]]) -> list[Key]:
        """Apply `change` to the stored set atomically (another replica may rotate too); the result."""
        ...


class MemoryKeys:
    def __init__(self) -> None:
        self.keys: list[Key] | None = None

    async def load(self) -> list[Key] | None:
        return self.keys

    async def rotate(self, change: Callable[[list[Key] | None], list[Key]]) -> list[Key]:
        self.keys = change(self.keys)
        return self.keys


class BackendSigner(Service):
    """Signs backend identity tokens and serves the JWKS; rotates the keys in the background."""

    def __init__(
        self,
        issuer: str,
        *,
        token_seconds: float = 60.0,
        rotate_seconds: float = 3600.0,
        share: KeyShare | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer, self.token_seconds, self.rotate_seconds = issuer, token_seconds, rotate_seconds
        self.share = share or MemoryKeys()
        self.clock = clock
        self._signing: tuple[str, Any] | None = None  # (kid, private key object)
        self._started = 0.0
        self._jwks: dict[str, Any] = {"keys": []}

    async def start(self, tg: TaskGroup) -> None:
        self._started = self.clock()
        keys = await self.share.load()
        if not keys:
            keys = await self.share.rotate(lambda stored: stored or self._first())
        self._use(keys)
        tg.start_soon(self._run)

    def _first(self) -> list[Key]:
        return [new_key("signing"), new_key("next")]

    async def _run(self) -> None:
        while True:
            await anyio.sleep(min(self.rotate_seconds, 30.0))
            await self.refresh()

    async def refresh(self) -> None:
        """Rotate if the signing key is due (one replica does it; the others pick the set up)."""
        keys = await self.share.load() or []
        due = self._due(keys)
        if due:
            keys = await self.share.rotate(self._rotate_if_due)
        if keys:
            self._use(keys)

    async def rotate_now(self) -> None:
        self._use(
            await self.share.rotate(lambda stored: rotated(stored or [], self.clock(), self.token_seconds))
        )

    def _rotate_if_due(self, stored: list[Key] | None) -> list[Key]:
        keys = stored or []
        return rotated(keys, self.clock(), self.token_seconds) if self._due(keys) or not keys else keys

    def _due(self, keys: list[Key]) -> bool:
        """The last rotation (the newest retirement, or the first start) is a period ago."""
        last = max((k.retired_at for k in keys if k.retired_at is not None), default=None)
        if last is None:
            last = self._started
        return self.clock() - last >= self.rotate_seconds

    def _use(self, keys: list[Key]) -> None:
        signing = next(key for key in keys if key.state == "signing")
        if self._signing is None or self._signing[0] != signing.kid:
            self._signing = (signing.kid, serialization.load_pem_private_key(signing.pem.encode(), None))
        self._jwks = {"keys": [_public_jwk(key) for key in keys]}

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def router_headers(self, record: BackendRecord) -> Callable[[], dict[str, str]] | None:
        """For a backend whose entry has `identity`: headers with a token the router makes for its
        own requests (session set-up, lists, pings), whose `sub` is the issuer itself."""
        identity = record.policy.identity
        if identity is None:
            return None
        audience = identity.audience or record.server

        def headers() -> dict[str, str]:
            return self.headers(identity, audience, self.issuer, frozenset(), "", None)

        return headers

    def headers(
        self,
        identity: BackendIdentity,
        audience: str,
        agent: str,
        groups: frozenset[str],
        namespace: str,
        request_id: str | None,
    ) -> dict[str, str]:
        token = self.token(audience, agent, groups, namespace, request_id)
        return {identity.header: f"Bearer {token}" if identity.header.lower() == "authorization" else token}

    def token(
        self, audience: str, agent: str, groups: frozenset[str], namespace: str, request_id: str | None
    ) -> str:
        if self._signing is None:
            raise RuntimeError("the backend signer has not started")
        kid, private = self._signing
        now = int(self.clock())
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": audience, "sub": agent, "groups": sorted(groups),
            "iat": now, "exp": now + int(self.token_seconds), "jti": jti, "rid": request_id or jti,
        }  # fmt: skip
        if namespace:
            claims["namespace"] = namespace
        return jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid})


def _public_jwk(key: Key) -> dict[str, Any]:
    private = serialization.load_pem_private_key(key.pem.encode(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, "kid": key.kid, "use": "sig", "alg": "ES256"}
