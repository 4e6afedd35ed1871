"""Host and Origin checks against DNS rebinding.

A router bound to loopback accepts only loopback Host names (plus `allowed_hosts`); one bound to
another address checks Host only when `allowed_hosts` is set. A request that carries an Origin
must come from a loopback origin or one listed in `allowed_origins` (403 otherwise, as the spec
asks). `*` in either list turns that check off.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class OriginPolicy:
    def __init__(self, listen_host: str, allowed_hosts: list[str], allowed_origins: list[str]) -> None:
        self.any_host = "*" in allowed_hosts
        self.hosts = {h.lower() for h in allowed_hosts} | LOOPBACK | {listen_host.lower()}
        self.check_host = not self.any_host and (listen_host in LOOPBACK or bool(allowed_hosts))
        self.any_origin = "*" in allowed_origins
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}

    def host_ok(self, host: str | None) -> bool:
        if not self.check_host:
            return True
        if not host:
            return False
        return _strip_port(host.lower()) in self.hosts

    def origin_ok(self, origin: str | None) -> bool:
        if origin is None or self.any_origin:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.origins:
            return True
        hostname = urlsplit(origin).hostname
        return hostname is not None and (hostname in LOOPBACK or f"[{hostname}]" in LOOPBACK)


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
