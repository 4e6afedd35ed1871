"""Router-minted pagination cursors.

Opaque to clients, signed so that any replica sharing the cluster key accepts them and a forged
or edited cursor is refused with a clear error. A cursor holds the list kind and an offset into
the aggregated list; backends' own cursors are followed when the index is built, never exposed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from router.errors import INVALID_PARAMS, RPCError


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, kind: str, offset: int) -> str:
        body = f"{kind}:{offset}".encode()
        return _b64(body) + "." + _b64(self._mac(body))

    def decode(self, kind: str, cursor: object) -> int:
        """The offset a cursor points at; RPCError(-32602) if it is not one of ours for `kind`."""
        if not isinstance(cursor, str):
            raise RPCError(INVALID_PARAMS, "cursor must be a string returned as nextCursor")
        try:
            body_text, mac_text = cursor.split(".", 1)
            body = base64.urlsafe_b64decode(body_text + "=" * (-len(body_text) % 4))
            mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
            cursor_kind, offset_text = body.decode().split(":", 1)
            offset = int(offset_text)
        except (ValueError, UnicodeDecodeError):
            raise RPCError(INVALID_PARAMS, "invalid cursor: pass back nextCursor unchanged") from None
        if not hmac.compare_digest(mac, self._mac(body)) or cursor_kind != kind or offset < 0:
            raise RPCError(INVALID_PARAMS, "invalid cursor: pass back nextCursor unchanged")
        return offset

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:12]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
