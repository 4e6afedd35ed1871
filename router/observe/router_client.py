"""How the operator commands (`status`, `usage`, `capabilities suggest`) read a running router:
one GET of a JSON document with the caller's token, and one way to say what went wrong (a bad
`--router` URL, an error status, no answer), so none of them ends in a traceback."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

TOKEN_ENV = "TOOLMESH_TOKEN"


class RouterRequestFailed(Exception):
    """What to tell the person who ran the command (the command prefixes its name)."""


def router_base(url: str) -> str:
    """`--router` as a base URL (no trailing slash); RouterRequestFailed if it is not one."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed here, so a bad port is named here
    except ValueError as exc:
        raise RouterRequestFailed(
            f"--router {url!r} is not a URL ({exc}); e.g. http://127.0.0.1:8080"
        ) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise RouterRequestFailed(f"--router {url!r} is not an http(s) URL; e.g. http://127.0.0.1:8080")
    return url.rstrip("/")


def get_json(router: str, path: str, token: str | None) -> Any:
    """GET `path` of the router at `router` (a `--router` value) as JSON, with `token` (else
    $TOOLMESH_TOKEN) as the bearer credential."""
    url = router_base(router) + path
    token = token or os.environ.get(TOKEN_ENV)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # a CLI: blocking is fine here
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        hint = f" (pass --token or set {TOKEN_ENV})" if exc.code == 401 else ""
        raise RouterRequestFailed(f"{url} answered {exc.code}: {detail}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RouterRequestFailed(f"cannot reach {url}: {exc}") from None
    except ValueError as exc:  # not JSON
        raise RouterRequestFailed(
            f"{url} did not answer JSON ({exc}); is --router a toolmesh router?"
        ) from None
