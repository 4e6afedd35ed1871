"""JWT bearer tokens: signature, expiry, issuer and audience, for `router.guard.identity`.

HS256 uses a shared secret; RS256/ES256 use a PEM public key or keys from a JWKS URL, fetched with
aiohttp (never a blocking fetch on the event loop), cached, and refetched when a token names an
unknown `kid` (at most once per `JWKS_MIN_REFRESH` seconds, so junk tokens cannot make us hammer
the issuer). A module of its own so a router without JWT settings never imports PyJWT and
`cryptography`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import jwt
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm

from router.guard.agent import Agent, AuthError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("toolmesh.guard")

JWKS_MIN_REFRESH = 5.0


@dataclass(slots=True)
class JwtConfig:
    issuer: str | None
    audience: str | None
    algorithms: list[str]
    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    jwks_cache_seconds: float = 300.0
    agent_claim: str = "sub"
    groups_claim: str = "groups"


class JwksCache:
    """Signing keys from a JWKS URL, by `kid`; refreshed on expiry or on an unknown kid."""

    def __init__(self, url: str, max_age: float) -> None:
        self.url, self.max_age = url, max_age
        self._keys: dict[str, Any] = {}
        self._fetched = 0.0
        self._lock = anyio.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def key(self, kid: str | None) -> Any:
        now = time.monotonic()
        stale = now - self._fetched > self.max_age
        if stale or (kid not in self._keys and now - self._fetched > JWKS_MIN_REFRESH):
            await self._refresh()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(kid or "")
        if key is None:
            raise AuthError("unknown_kid", "token signed with a key the issuer does not publish")
        return key

    async def _refresh(self) -> None:
        import aiohttp  # only JWKS users pay for it: importing aiohttp is a fifth of start-up

        async with self._lock:
            if time.monotonic() - self._fetched < 1.0:
                return  # another request refreshed while we waited
            try:
                if self._http is None or self._http.closed:
                    self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
                async with self._http.get(self.url) as response:
                    response.raise_for_status()
                    document = await response.json(content_type=None)
                self._keys = _parse_jwks(document)
                log.info("JWKS fetched", extra={"url": self.url, "keys": len(self._keys)})
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.warning("JWKS fetch failed; keeping the keys we had", extra={"reason": str(exc)})
            self._fetched = time.monotonic()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def _parse_jwks(document: Any) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for raw in document.get("keys", []) if isinstance(document, dict) else []:
        kty = raw.get("kty")
        key: Any
        try:
            if kty == "RSA":
                key = RSAAlgorithm.from_jwk(raw)
            elif kty == "EC":
                key = ECAlgorithm.from_jwk(raw)
            elif kty == "oct":
                key = HMACAlgorithm.from_jwk(raw)
            else:
                continue
        except (jwt.InvalidKeyError, ValueError, KeyError):
            continue
        keys[str(raw.get("kid", ""))] = key
    return keys


class JwtVerifier:
    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self.jwks = JwksCache(config.jwks_url, config.jwks_cache_seconds) if config.jwks_url else None

    async def verify(self, token: str) -> Agent:
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthError("invalid_token", "the bearer token is neither an API key nor a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in config.algorithms:
            raise AuthError("invalid_token", f"token algorithm {algorithm!r} is not accepted")
        key: Any
        if algorithm.startswith("HS"):
            key = config.secret
        elif self.jwks is not None:
            key = await self.jwks.key(header.get("kid"))
        else:
            key = config.public_key
        if key is None:
            raise AuthError("invalid_token", f"no key configured for {algorithm} tokens")
        options: Any = {"require": ["exp"], "verify_aud": config.audience is not None}
        try:
            claims = jwt.decode(
                token, key, algorithms=[algorithm], audience=config.audience, issuer=config.issuer,
                options=options, leeway=30,
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise AuthError("expired", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError("invalid_token", f"token rejected: {exc}") from None
        agent = claims.get(config.agent_claim)
        if not isinstance(agent, str) or not agent:
            raise AuthError("invalid_token", f"token has no `{config.agent_claim}` claim")
        return Agent(agent, _groups(claims.get(config.groups_claim)), "jwt", claims)


def _groups(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())  # an OAuth `scope` claim is space-separated
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()
