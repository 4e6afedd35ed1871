"""The backend identity key set shared by the replicas: one entry in the JetStream key-value
bucket `<prefix>_identity_keys` (see `router/guard/backend_tokens.py`).

Every replica signs with the key the set marks `signing` and publishes the whole set at
`/.well-known/jwks.json`, so a backend may fetch the keys from any replica. A rotation is a
compare-and-set on the entry's revision: when two replicas find the key due at once, one wins and
the other takes its set. Without NATS (down at start) a replica keeps a set of its own in memory
until the bucket answers, and says so in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from router.cluster.link import NatsLink
from router.guard.backend_tokens import Key, MemoryKeys

log = logging.getLogger("toolmesh.identity")

BUCKET = "identity_keys"
ENTRY = "keys"


class NatsIdentityKeys:
    def __init__(self, link: NatsLink) -> None:
        self.link = link
        self._local = MemoryKeys()  # while the bucket cannot be reached

    async def _kv(self) -> KeyValue | None:
        if not self.link.connected:
            return None
        try:
            return await self.link.key_value(BUCKET)
        except Exception as exc:
            log.warning("identity key bucket unavailable; keys kept locally", extra={"error": str(exc)})
            return None

    async def load(self) -> list[Key] | None:
        kv = await self._kv()
        if kv is None:
            return await self._local.load()
        keys, _ = await _read(kv)
        return keys

    async def rotate(self, change: Callable[[list[Key] | None], list[Key]]) -> list[Key]:
        kv = await self._kv()
        if kv is None:
            return await self._local.rotate(change)
        for _ in range(8):
            current, revision = await _read(kv)
            wanted = change(current)
            if current is not None and wanted == current:
                return current
            data = orjson.dumps([key.to_json() for key in wanted])
            try:
                if revision is None:
                    await kv.create(ENTRY, data)
                else:
                    await kv.update(ENTRY, data, last=revision)
                return wanted
            except KeyWrongLastSequenceError:
                continue  # another replica rotated first: apply the change to its set
        current, _ = await _read(kv)
        return current if current is not None else await self._local.rotate(change)


async def _read(kv: KeyValue) -> tuple[list[Key] | None, int | None]:
    try:
        entry = await kv.get(ENTRY)
    except KeyNotFoundError:
        return None, None
    if entry.value is None:
        return None, entry.revision
    return [Key.from_json(item) for item in orjson.loads(entry.value)], entry.revision
