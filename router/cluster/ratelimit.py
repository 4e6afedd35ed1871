"""Rate-limit buckets shared by every replica: GCRA TATs in a NATS JetStream key-value bucket.

Each bucket is one key holding its TAT (wall-clock seconds, as text). Taking calls is a
compare-and-set: read the entry, compute, `update(key, value, last=revision)`, and start over if
another replica got there first. Three things keep that off the hot path and away from
contention (measured in docs/benchmarks.md):

- **Single flight per key.** At most one KV round trip per key is in flight per replica; callers
  that arrive meanwhile wait for its result instead of racing it.
- **Token leasing for hot keys.** A round trip may take several calls' worth of the bucket at
  once (a lease) and hand them out locally, without awaiting anything. The batch grows while the
  key stays hot and shrinks when it cools, and never exceeds the rule's burst, so the shared TAT
  still bounds what all replicas admit together. Unused leased calls lapse after `lease_ttl`.
- **Remembered denials.** A refused lease says how long until the next call fits; until then the
  replica refuses locally.

A refund (a later rule refused the call) puts the call back into the key's lease, where the next
call on this replica uses it; the shared TAT already counts leased calls, so this is exact for
the cluster as long as the lease lives, and an unused refund lapses like any leased call.

NATS unreachable (not connected, or a KV call failing or slower than `op_timeout`): the store
falls back to local buckets holding the rule divided by the replica count last seen (replicas
announce themselves on `<prefix>.replicas` every `heartbeat` seconds), logs it, and reports
`degraded` for /readyz and metrics until NATS answers again.

The connection is the router's one `NatsLink` (router.cluster.link); the store only asks it
for the `<prefix>_ratelimit` bucket once the link is up.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import nats.errors
import nats.js.errors
from anyio.abc import TaskGroup
from nats.js.kv import KeyValue

from router.catalog.server_rules import LimitRule
from router.cluster.link import NatsLink, SharedMode
from router.guard.ratelimit import MemoryRateStore, gcra
from router.lifecycle import Service

log = logging.getLogger("toolmesh.ratelimit")

BUCKET_TTL = 3600.0  # an idle bucket's TAT is in the past long before this: forgetting it is exact
CAS_ATTEMPTS = 16


@dataclass(slots=True)
class _Lease:
    tokens: int = 0
    expires: float = 0.0
    denied_until: float = 0.0
    batch: int = 1
    last_refill: float = 0.0
    inflight: anyio.Event | None = None


@dataclass(slots=True)
class _Peers:
    seen: dict[str, float] = field(default_factory=dict)
    count: int = 1


class NatsRateStore(Service):
    name = "nats"

    def __init__(
        self,
        link: NatsLink,
        *,
        max_batch: int = 50,
        lease_ttl: float = 1.0,
        hot_interval: float = 0.1,
        op_timeout: float = 0.5,
        heartbeat: float = 2.0,
        on_degraded: Callable[[bool, int], None] | None = None,
    ) -> None:
        self.link = link
        self.heartbeat_subject = link.subject("replicas")
        self.max_batch, self.lease_ttl, self.hot_interval = max_batch, lease_ttl, hot_interval
        self.op_timeout, self.heartbeat = op_timeout, heartbeat
        self.on_degraded = on_degraded
        self.replica = uuid.uuid4().hex[:12]
        self.kv: KeyValue | None = None
        self.local = MemoryRateStore()
        self._local_rules: dict[tuple[LimitRule, int], LimitRule] = {}
        self._leases: dict[str, _Lease] = {}
        self._peers = _Peers()
        self._failed_until = 0.0
        self._mode = SharedMode(
            log,
            "NATS unreachable: rate limits are local, each replica admits 1/%d of every limit",
            "NATS reachable again: rate limits are shared",
        )
        self._subscribed = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, tg: TaskGroup) -> None:
        self.link.watch(self._on_link)
        tg.start_soon(self._beat)

    async def _on_link(self, up: bool) -> None:
        """Open the bucket and join the heartbeat once the link is up."""
        if up:
            if self.kv is None:
                self.kv = await self.link.key_value("ratelimit", ttl=BUCKET_TTL)
            if not self._subscribed:
                self._subscribed = (
                    await self.link.subscribe(self.heartbeat_subject, self._on_heartbeat) is not None
                )
            await self.link.publish(self.heartbeat_subject, self.replica.encode())
        self._note_degraded()

    async def _beat(self) -> None:
        """Announce this replica, count the others, and notice NATS going away and coming back."""
        while True:
            await self.link.publish(self.heartbeat_subject, self.replica.encode())
            now = time.monotonic()
            horizon = now - 3 * self.heartbeat
            for replica in [r for r, seen in self._peers.seen.items() if seen < horizon]:
                del self._peers.seen[replica]
            if self.link.connected and self._peers.seen:
                self._peers.count = max(1, len(self._peers.seen))
            self._note_degraded()
            self.local.forget_idle()
            self._forget_idle_leases(now)
            await anyio.sleep(self.heartbeat)

    def _forget_idle_leases(self, now: float) -> None:
        idle = [
            key
            for key, lease in self._leases.items()
            if lease.inflight is None
            and lease.expires < now
            and lease.denied_until < now
            and now - lease.last_refill > self.heartbeat
        ]
        for key in idle:
            del self._leases[key]

    async def _on_heartbeat(self, msg: Any) -> None:
        self._peers.seen[msg.data.decode()] = time.monotonic()

    @property
    def replicas(self) -> int:
        return self._peers.count

    @property
    def degraded(self) -> bool:
        return not self.link.connected or self.kv is None or self._failed_until > time.monotonic()

    def _note_degraded(self) -> None:
        if self._mode.note(self.degraded, self.replicas) and self.on_degraded is not None:
            self.on_degraded(self.degraded, self.replicas)

    # -- taking calls ---------------------------------------------------------------------------

    async def take(self, key: str, rule: LimitRule) -> float:
        while True:
            now = time.monotonic()
            lease = self._leases.get(key)
            if lease is None:
                lease = self._leases[key] = _Lease()
            if lease.tokens > 0 and lease.expires > now:
                lease.tokens -= 1
                return 0.0
            if lease.denied_until > now:
                return lease.denied_until - now
            if self.degraded:
                self._note_degraded()
                return self.local.take_now(key, self._local_rule(rule))
            if lease.inflight is not None:
                await lease.inflight.wait()
                continue
            lease.inflight = anyio.Event()
            try:
                await self._refill(key, rule, lease, now)
            finally:
                lease.inflight.set()
                lease.inflight = None

    def refund(self, key: str, rule: LimitRule) -> None:
        lease = self._leases.get(key)
        if lease is not None and lease.expires > time.monotonic():
            lease.tokens += 1
        else:  # taken from the local fallback while NATS was away (or the lease just lapsed)
            self.local.refund(key, self._local_rule(rule))

    async def _refill(self, key: str, rule: LimitRule, lease: _Lease, now: float) -> None:
        hot = now - lease.last_refill < self.hot_interval
        lease.batch = min(lease.batch * 2, self.max_batch) if hot else max(1, lease.batch // 2)
        lease.last_refill = now
        wanted = max(1, min(lease.batch, rule.capacity))
        try:
            with anyio.fail_after(self.op_timeout):
                granted, wait = await self._cas(key, rule, wanted)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            self._failed_until = time.monotonic() + self.heartbeat
            log.warning("rate-limit store call failed", extra={"reason": repr(exc)})
            self._note_degraded()
            return
        after = time.monotonic()
        if granted:
            lease.tokens, lease.expires = granted, after + self.lease_ttl
        else:
            lease.denied_until = after + wait

    async def _cas(self, key: str, rule: LimitRule, wanted: int) -> tuple[int, float]:
        """Take up to `wanted` calls from the shared TAT; (granted, seconds to wait if none)."""
        kv = self.kv
        assert kv is not None
        for _ in range(CAS_ATTEMPTS):
            now = time.time()
            try:
                entry = await kv.get(key)
                tat, revision = float(entry.value or b"0"), entry.revision
            except nats.js.errors.KeyNotFoundError:
                tat, revision = now, None
            new_tat, granted, wait = gcra(tat, now, rule, wanted)
            if not granted:
                return 0, wait
            value = repr(new_tat).encode()
            try:
                if revision is None:
                    await kv.create(key, value)
                else:
                    await kv.update(key, value, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another replica moved the bucket: read it again
            return granted, 0.0
        return 0, rule.interval  # contention beyond reason: refuse this round, briefly

    def _local_rule(self, rule: LimitRule) -> LimitRule:
        """The rule's share for one replica of `replicas` while NATS is away."""
        share = (rule, self.replicas)
        local = self._local_rules.get(share)
        if local is None:
            count = self.replicas
            local = rule.model_copy(
                update={"rate": rule.rate / count, "burst": max(1, rule.capacity // count)}
            )
            self._local_rules[share] = local
        return local
