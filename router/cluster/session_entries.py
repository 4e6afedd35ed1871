"""What a session's entry in the JetStream bucket holds, and how a replica reads it: the record's
encoding, the operation a watched message carries (a value, a deletion, or nats-server 2.11's
marker for an entry aged out or purged), the newest of what a fetch and the watch saw of one key,
and an entry's revision now (for `cluster/sessions.py`, which keeps the sessions a replica uses)."""

from __future__ import annotations

import dataclasses

import orjson
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from router.state.sessions import SessionRecord

RECORD_FIELDS = frozenset(field.name for field in dataclasses.fields(SessionRecord))
DELETED = frozenset({"DEL", "PURGE"})
# nats-server 2.11+ marks an entry removed by its TTL or a purge with this header instead.
MARKER_REASONS = {"MaxAge": "PURGE", "Purge": "PURGE", "Remove": "DEL"}

# What the watch saw of a key while a fetch of it was in flight: (operation, revision, value).
News = tuple[str | None, int, bytes]


def encode(record: SessionRecord) -> bytes:
    return orjson.dumps(record)


def decode(data: bytes) -> SessionRecord:
    raw = orjson.loads(data)
    return SessionRecord(**{key: value for key, value in raw.items() if key in RECORD_FIELDS})


def operation_of(msg: Msg) -> str | None:
    """A watched message's KV operation: None for a value, "DEL" or "PURGE" for an ending."""
    headers = msg.headers or {}
    operation = headers.get("KV-Operation")
    if operation is None and "Nats-Marker-Reason" in headers:
        return MARKER_REASONS.get(headers["Nats-Marker-Reason"], "PURGE")
    return operation


def newest(found: News, news: list[News]) -> News:
    """The newest of a fetched entry and what the watch delivered for its key meanwhile."""
    newest = found
    for item in news:
        if item[1] > newest[1]:
            newest = item
    return newest


async def latest_revision(kv: KeyValue, token: str) -> int | None:
    """The entry's revision now; 0 if it aged out of the bucket while NATS was away (write it
    anew), None if it was deleted: the session ended on another replica."""
    try:
        return (await kv.get(token)).revision or 0
    except KeyNotFoundError as missing:
        return None if missing.op is not None else 0  # nats-py folds a delete marker in here
