"""Attempt records in the shared store: a JetStream key-value bucket, `<prefix>_attempts`.

One entry per tool call running anywhere in the cluster that must not run twice (see
`router/relay/attempts.py` for which, and why): created with JetStream's atomic create just before
the call goes upstream (so two replicas cannot both believe they are first), removed in the
background when it ended. An entry whose replica died stays until the bucket's TTL, long enough
for any retry of the balancer. With NATS unreachable a call runs unrecorded, as on one replica.

Removing an entry leaves a marker in the bucket's stream, and a delete's marker stays for the
bucket's TTL (600 s): the bucket held every call of the last ten minutes (at 30 calls/s, 18,000
markers and tens of MiB in nats-server) where it needs only the calls in flight. So an ended
call's entry is purged with a marker of its own TTL, `MARKER_TTL` (JetStream's per-message TTL,
nats-server 2.11+; the client ignores a TTL on a delete).
"""

from __future__ import annotations

import contextlib
import logging

import anyio
from anyio.abc import TaskGroup
from nats.js.errors import APIError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from router.cluster.link import NatsLink
from router.lifecycle import Service

log = logging.getLogger("toolmesh.attempts")

BUCKET = "attempts"
ENDED_BACKLOG = 4096  # deletes waiting to be written; past it the TTL ages the entry out
MARKER_TTL = 1.0  # seconds a purge marker is kept (JetStream's shortest per-message TTL)


class NatsCallRecords(Service):
    def __init__(self, link: NatsLink, ttl: float) -> None:
        self.link = link
        self.ttl = ttl
        self._kv: KeyValue | None = None
        self._ended_send, self._ended_receive = anyio.create_memory_object_stream[str](ENDED_BACKLOG)

    async def start(self, tg: TaskGroup) -> None:
        self.link.watch(self._on_link)
        if self.link.connected:
            await self._on_link(True)
        tg.start_soon(self._forget_ended)

    async def _on_link(self, up: bool) -> None:
        if up and self._kv is None:
            try:
                self._kv = await self.link.key_value(BUCKET, ttl=self.ttl)
            except Exception as exc:
                log.warning("attempt bucket unavailable; calls run unrecorded", extra={"error": str(exc)})

    async def begin(self, key: str) -> bool:
        kv = self._kv
        if kv is None or not self.link.connected:
            return True
        try:
            await kv.create(key, b"")
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:  # the store did not answer: run it, as without a store
            log.warning("call runs unrecorded", extra={"error": str(exc)})
        return True

    def end(self, key: str) -> None:
        with contextlib.suppress(anyio.WouldBlock):  # a full backlog: the TTL ages the entry out
            self._ended_send.send_nowait(key)

    async def _forget_ended(self) -> None:
        async for key in self._ended_receive:
            kv = self._kv
            if kv is None or not self.link.connected:
                continue
            try:
                try:
                    await kv.purge(key, msg_ttl=MARKER_TTL)
                except APIError:  # a bucket made without per-message TTLs: a marker for its TTL
                    await kv.delete(key)
            except Exception as exc:
                log.debug("attempt record left to its TTL", extra={"error": str(exc)})
