"""Exposed names: how a backend's tool, prompt or resource is named at the router.

Tools and prompts become `<server><sep><name>` (prefix "always") or stay as they are ("never").
Names keep to the spec's tool-name rules (1-128 of `A-Z a-z 0-9 _ - .`) and to the
`max_length` most clients enforce (64): a foreign character becomes `_`, and a name that is too
long is cut and given a hash of the original, so shortening is deterministic and two originals
never end up with one name. Resource URIs are namespaced as `toolmesh://<server>/<original>`,
which keeps the original readable and is reversed by a prefix strip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

Prefix = Literal["always", "never"]

_FOREIGN = re.compile(r"[^A-Za-z0-9_.-]")
URI_SCHEME = "toolmesh://"


@dataclass(frozen=True, slots=True)
class NamingPolicy:
    prefix: Prefix = "always"
    separator: str = "__"
    max_length: int = 64

    def expose(self, server: str, name: str) -> str:
        """The name a client sees for `name` of `server` (before collision handling)."""
        base = f"{server}{self.separator}{name}" if self.prefix == "always" else name
        clean = _FOREIGN.sub("_", base) or "_"
        if clean == base and len(clean) <= self.max_length:
            return clean
        return self.shorten(clean, f"{server}\x00{name}")

    def shorten(self, clean: str, identity: str) -> str:
        """Cut to fit and append a digest of the original identity: stable and collision-free."""
        digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
        keep = self.max_length - len(digest) - 1
        return f"{clean[:keep]}_{digest}"

    def expose_uri(self, server: str, uri: str) -> str:
        return f"{URI_SCHEME}{server}/{uri}" if self.prefix == "always" else uri

    def split_uri(self, uri: str) -> tuple[str, str] | None:
        """`toolmesh://<server>/<original>` -> (server, original); None if not namespaced."""
        if self.prefix != "always" or not uri.startswith(URI_SCHEME):
            return None
        server, sep, original = uri[len(URI_SCHEME) :].partition("/")
        return (server, original) if sep and server else None
