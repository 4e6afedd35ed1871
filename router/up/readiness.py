"""Readiness checks for `toolmesh up`'s steps: callables that say whether a part answers yet."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Sequence


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of a GET to `url`, or None when nothing answers."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def answers(url: str, *, status: int | None = 200) -> Callable[[], bool]:
    """Ready when a GET to `url` answers `status` (None: with any status at all)."""

    def ready() -> bool:
        got = http_status(url)
        return got is not None and (status is None or got == status)

    return ready


def serves(router_url: str, servers: Sequence[str]) -> Callable[[], bool]:
    """Ready when the router's /readyz lists every one of `servers` as ready (so it was registered)."""

    def ready() -> bool:
        from urllib.request import urlopen

        try:
            with urlopen(f"{router_url}/readyz", timeout=1.0) as response:
                backends = json.loads(response.read()).get("backends", {})
        except (OSError, ValueError):
            return False
        states = {name.split("/")[0]: detail.get("state") for name, detail in backends.items()}
        return all(states.get(server) == "ready" for server in servers)

    return ready
