"""Rate limits per agent, server and tool: GCRA over a store that may span replicas.

GCRA (the generic cell rate algorithm) keeps one number per bucket, the theoretical arrival time
(TAT) of the next call at the steady rate. A call is admitted if, after adding it, the TAT is no
more than `capacity` intervals ahead of now; otherwise it is told exactly how long to wait. One
float per key makes it cheap to share: the NATS store compare-and-sets it in JetStream KV.

The seam is `RateStore.take(key, rule)`: seconds to wait, 0.0 meaning admitted. Stores decide
locally whenever they can (the memory store always; the NATS store while it holds leased tokens
or a remembered denial), so the check adds no network round trip on the hot path.

Rules come from the catalog (`limits` under a server, or `toolmesh.limits` for all of them).
A call is checked against every rule that matches its server and tool; a rule's `per`
dimensions choose the bucket (`per: ["agent"]` gives each agent its own). A call one rule
refuses consumes nothing: the calls already taken from the rules checked before it are given
back (`RateStore.refund`), so a refused call never uses up another rule's budget. Refunds happen
only on refusal, so an admitted call pays nothing for them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from router.catalog.server_rules import LimitRule
from router.errors import RateLimited

log = logging.getLogger("toolmesh.ratelimit")

_KEY_SAFE = re.compile(r"^[-_a-zA-Z0-9]{1,64}$")


def agent_of(ctx: Any) -> str:
    """Who a call counts against: the authenticated agent's id (every anonymous caller is one)."""
    agent = getattr(ctx, "agent", None)
    return str(getattr(agent, "id", None) or "anonymous")


def gcra(tat: float, now: float, rule: LimitRule, wanted: int = 1) -> tuple[float, int, float]:
    """Admit up to `wanted` calls: (new TAT, calls admitted, seconds until the next one fits)."""
    interval = rule.interval
    base = max(tat, now)
    room = int((now + rule.capacity * interval - base) / interval + 1e-9)
    granted = max(0, min(wanted, room))
    if granted:
        return base + granted * interval, granted, 0.0
    return tat, 0, base + interval - rule.capacity * interval - now


class RateStore(Protocol):
    name: str

    @property
    def degraded(self) -> bool:
        """True while the store decides alone what should be decided together (NATS down)."""
        ...

    async def take(self, key: str, rule: LimitRule) -> float:
        """Take one call from `key`'s bucket: 0.0 if admitted, else seconds to wait."""
        ...

    def refund(self, key: str, rule: LimitRule) -> None:
        """Give back one call `take` admitted moments ago (a later rule refused the call)."""
        ...


class MemoryRateStore:
    """Buckets in this process; exact for one replica. Also the NATS store's fallback."""

    name = "memory"
    degraded = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tat: dict[str, float] = {}
        self._clock = clock

    def take_now(self, key: str, rule: LimitRule) -> float:
        now = self._clock()
        tat, granted, wait = gcra(self._tat.get(key, now), now, rule)
        if granted:
            self._tat[key] = tat
        return wait

    async def take(self, key: str, rule: LimitRule) -> float:
        return self.take_now(key, rule)

    def refund(self, key: str, rule: LimitRule) -> None:
        """GCRA steps are additive: moving the TAT back one interval undoes one admission."""
        tat = self._tat.get(key)
        if tat is not None:
            self._tat[key] = tat - rule.interval

    def forget_idle(self) -> None:
        now = self._clock()
        for key in [key for key, tat in self._tat.items() if tat < now]:
            del self._tat[key]


def key_part(value: str) -> str:
    """A key segment JetStream accepts, the same on every replica."""
    if _KEY_SAFE.match(value):
        return value
    return "b" + base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()[:12]).decode()


def rule_id(rule: LimitRule) -> str:
    return hashlib.sha256(rule.model_dump_json().encode()).hexdigest()[:10]


class RateLimiter:
    """Checks a call against the catalog's rules; raises RateLimited with when to retry."""

    def __init__(self, store: RateStore, on_reject: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_reject = on_reject
        self._rules: Sequence[tuple[str, LimitRule]] = ()
        self._matching: dict[tuple[str, str], tuple[tuple[str, LimitRule], ...]] = {}

    def configure(self, rules: Sequence[LimitRule]) -> None:
        self._rules = tuple((rule_id(rule), rule) for rule in rules)
        self._matching = {}

    def _rules_for(self, server: str, tool: str) -> tuple[tuple[str, LimitRule], ...]:
        found = self._matching.get((server, tool))
        if found is None:
            found = tuple(
                (rid, rule)
                for rid, rule in self._rules
                if rule.server in (None, server) and rule.tool in (None, tool)
            )
            self._matching[(server, tool)] = found
        return found

    async def check(self, agent: str, server: str, tool: str) -> None:
        rules = self._rules_for(server, tool)
        for index, (rid, rule) in enumerate(rules):
            key = self._key(rid, rule, agent, server, tool)
            wait = await self.store.take(key, rule)
            if wait > 0:
                for earlier_rid, earlier in rules[:index]:  # a refused call consumes nothing
                    self.store.refund(self._key(earlier_rid, earlier, agent, server, tool), earlier)
                if self.on_reject is not None:
                    self.on_reject(server)
                raise RateLimited(rule.describe(), wait)

    @staticmethod
    def _key(rid: str, rule: LimitRule, agent: str, server: str, tool: str) -> str:
        key = rid
        for dimension in rule.per:
            key += "." + key_part(
                agent if dimension == "agent" else server if dimension == "server" else tool
            )
        return key
