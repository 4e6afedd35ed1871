"""Budgets shared by every replica: what each budget spent per window, in a JetStream KV bucket.

One key per budget, subject and window (`<budget>[.<agent>].<window start>`) holds the amount
spent or leased so far and whether the window's warning was told. As with the rate limits
(router/cluster/ratelimit.py), the hot path does no round trip per call:

- **Leased slices.** A replica takes a slice of the remainder with one compare-and-set (the
  shared amount grows by the slice at once) and spends it locally, awaiting nothing. A slice is
  at most half the remainder divided by the replicas counted, and for a call budget at most
  `max_batch` calls (the batch doubles while the key is hot and halves when it cools), so the
  shared amount never passes the limit: a call budget admits at most its limit, cluster-wide.
- **Cost budgets** admit a call while the replica's slice has anything left and charge the
  call's cost to the slice after it (the cost depends on the result). A slice overspent by
  calls that were in flight when it ran out is owed: the next compare-and-set adds the debt
  before leasing more. The overshoot is therefore at most the cost of the calls admitted while
  the slices ran dry, per replica; docs/usage.md#budgets writes the bound down.
- **Unused slices go back.** A slice untouched for `lease_idle` seconds is returned (the shared
  amount shrinks by it, or grows by a debt), and so is every slice when the replica stops; a
  slice of a window that ended is dropped.
- **Remembered refusals.** A refused lease is remembered for `lease_idle` seconds (never past
  the window's end), so a caller over budget costs no round trip either.

The warning (`warn_at`) is told by the replica whose compare-and-set first brings the shared
amount to the threshold, which it marks in the same write: once per window in the cluster,
early by at most one slice (leased counts as spent).

NATS unreachable: each replica counts alone against its share of the limit (the limit divided
by the replicas last counted) for the rest of the outage, and reports `degraded`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import nats.errors
import nats.js.errors
from anyio.abc import TaskGroup
from nats.js.kv import KeyValue

from router.cluster.link import NatsLink, SharedMode
from router.guard.budgets import Budget, BudgetWarning, MemoryBudgetStore, OnWarning, Window
from router.lifecycle import Service

log = logging.getLogger("toolmesh.budgets")

BUCKET_TTL = 32 * 86400.0  # a key outlives the longest window (a month) it counts
CAS_ATTEMPTS = 16


@dataclass(slots=True)
class _Slice:
    budget: Budget  # the latest policy's budget of that name
    window: Window
    left: float = 0.0  # leased and not spent yet; negative: spent beyond the lease (owed)
    denied_until: float = 0.0
    batch: int = 1
    last_refill: float = 0.0
    seen: float = float("nan")  # `left` at the last sweep: unchanged means idle
    est: float = 0.0  # what a call cost lately (cost budgets)
    inflight: anyio.Event | None = None


class NatsBudgetStore(Service):
    name = "nats"

    def __init__(
        self,
        link: NatsLink,
        *,
        replicas: Callable[[], int] = lambda: 1,
        max_batch: int = 50,
        lease_idle: float = 1.0,
        hot_interval: float = 0.1,
        op_timeout: float = 0.5,
        on_warning: OnWarning | None = None,
    ) -> None:
        self.link = link
        self.replicas = replicas
        self.max_batch, self.lease_idle, self.hot_interval = max_batch, lease_idle, hot_interval
        self.op_timeout = op_timeout
        self.on_warning = on_warning
        self.local = MemoryBudgetStore(on_warning)
        self.kv: KeyValue | None = None
        self._slices: dict[tuple[str, float], _Slice] = {}
        # The shared amount per (key, window start) as this replica last read or wrote it, with
        # the window's end: what `amounts()` reports to operators.
        self._seen: dict[tuple[str, float], tuple[float, float]] = {}
        self._shares: dict[tuple[Budget, int], Budget] = {}
        self._failed_until = 0.0
        self._mode = SharedMode(
            log,
            "NATS unreachable: budgets are local, each replica spends 1/%d of every budget",
            "NATS reachable again: budgets are shared",
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, tg: TaskGroup) -> None:
        """Entered after the link (so it is left before it and can give its slices back)."""
        self.link.watch(self._on_link)
        if self.link.connected:
            await self._on_link(True)
        tg.start_soon(self._sweep_forever)

    async def stop(self) -> None:
        """Give every unused slice back, so a stopping replica strands nothing."""
        with anyio.move_on_after(2):
            for slot, piece in list(self._slices.items()):
                await self._give_back(slot, piece)

    async def _on_link(self, up: bool) -> None:
        if up and self.kv is None:
            self.kv = await self.link.key_value("budgets", ttl=BUCKET_TTL)
        self._note_degraded()

    @property
    def degraded(self) -> bool:
        return not self.link.connected or self.kv is None or self._failed_until > time.monotonic()

    def _note_degraded(self) -> None:
        self._mode.note(self.degraded, self.replicas())

    async def _sweep_forever(self) -> None:
        while True:
            await anyio.sleep(self.lease_idle / 2)
            await self.sweep()

    async def sweep(self) -> None:
        """Drop slices of ended windows; give back slices idle for `lease_idle`."""
        wall, now = time.time(), time.monotonic()
        for slot in [slot for slot, (_, end) in self._seen.items() if end <= wall]:
            del self._seen[slot]
        for slot, piece in list(self._slices.items()):
            if piece.window.end <= wall:
                del self._slices[slot]
            elif (
                piece.inflight is None
                and piece.left == piece.seen
                and now - piece.last_refill > self.lease_idle
                and not self.degraded
            ):
                await self._give_back(slot, piece)
            else:
                piece.seen = piece.left

    async def _give_back(self, slot: tuple[str, float], piece: _Slice) -> None:
        """Detach the slice first (a call meanwhile leases a new one), then settle what was left."""
        if self._slices.get(slot) is piece:
            del self._slices[slot]
        left, piece.left = piece.left, 0.0
        if left == 0:
            return
        try:
            if self.kv is None or not self.link.connected:
                raise ConnectionError("NATS is not connected")
            with anyio.fail_after(self.op_timeout):
                await self._cas(slot[0], piece.budget, piece.window, -left, 0.0)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            log.debug("budget slice not given back yet", extra={"reason": repr(exc)})
            current = self._slices.setdefault(slot, piece)  # keep it for the next sweep
            current.left += left

    # -- spending -------------------------------------------------------------------------------

    def _slice(self, key: str, budget: Budget, window: Window) -> tuple[tuple[str, float], _Slice]:
        slot = (key, window.start)
        piece = self._slices.get(slot)
        if piece is None:
            piece = self._slices[slot] = _Slice(budget, window)
        elif piece.budget is not budget:  # a new policy: its budget of that name counts from here
            piece.budget = budget
        return slot, piece

    async def take(self, key: str, budget: Budget, window: Window) -> bool:
        slot, piece = self._slice(key, budget, window)
        while True:
            if budget.unit == "calls":
                if piece.left >= 1:
                    piece.left -= 1
                    return True
            elif piece.left > 0:
                return True
            now = time.monotonic()
            if piece.denied_until > now:
                return False
            if self.degraded:
                self._note_degraded()
                return self.local.take_now(key, self._share(budget), window)
            if piece.inflight is not None:
                await piece.inflight.wait()
                continue
            piece.inflight = anyio.Event()
            try:
                await self._refill(key, budget, piece, now)
            finally:
                piece.inflight.set()
                piece.inflight = None
            if self._slices.get(slot) is not piece:  # given back meanwhile: lease again
                slot, piece = self._slice(key, budget, window)

    def refund(self, key: str, budget: Budget, window: Window) -> None:
        piece = self._slices.get((key, window.start))
        if piece is not None and not self.degraded:
            piece.left += 1
        else:
            self.local.refund(key, self._share(budget), window)

    def charge(self, key: str, budget: Budget, window: Window, amount: float) -> None:
        if self.degraded:
            self.local.charge(key, self._share(budget), window, amount)
            return
        _, piece = self._slice(key, budget, window)  # a slice given back meanwhile is owed anew
        piece.left -= amount
        piece.est = amount if piece.est == 0 else 0.8 * piece.est + 0.2 * amount

    async def _refill(self, key: str, budget: Budget, piece: _Slice, now: float) -> None:
        hot = now - piece.last_refill < self.hot_interval
        piece.batch = min(piece.batch * 2, self.max_batch) if hot else max(1, piece.batch // 2)
        piece.last_refill = now
        owed = max(0.0, -piece.left)
        try:
            with anyio.fail_after(self.op_timeout):
                granted = await self._cas(key, budget, piece.window, owed, None, piece)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            self._failed_until = time.monotonic() + 2.0
            log.warning("budget store call failed", extra={"reason": repr(exc)})
            self._note_degraded()
            return
        piece.left += owed + granted
        if granted <= 0:
            piece.denied_until = min(
                time.monotonic() + self.lease_idle, time.monotonic() + piece.window.end - time.time()
            )

    def _size(self, budget: Budget, piece: _Slice, remaining: float) -> float:
        """How much of `remaining` one lease takes."""
        if remaining <= 0 or (budget.unit == "calls" and remaining < 1):
            return 0.0
        share = remaining / (2 * max(1, self.replicas()))
        if budget.unit == "calls":
            return float(max(1, min(piece.batch, int(share))))
        if piece.est <= 0:
            return min(remaining, share / self.max_batch)
        return min(remaining, max(piece.est, min(share, piece.est * piece.batch)))

    async def _cas(
        self,
        key: str,
        budget: Budget,
        window: Window,
        add: float,
        lease: float | None,
        piece: _Slice | None = None,
    ) -> float:
        """Add `add` to the shared amount (a debt, or a slice given back when negative) and, if
        `lease` is None, lease a slice of what is left; returns the slice (0: none left)."""
        kv = self.kv
        assert kv is not None
        name = f"{key}.{int(window.start)}"
        for _ in range(CAS_ATTEMPTS):
            try:
                entry = await kv.get(name)
                used_text, _, warned_text = (entry.value or b"0 0").decode().partition(" ")
                used, warned, revision = float(used_text), warned_text == "1", entry.revision
            except nats.js.errors.KeyNotFoundError:
                used, warned, revision = 0.0, False, None
            spent = used + add
            granted = (
                lease
                if lease is not None
                else self._size(budget, piece or _Slice(budget, window), budget.limit - spent)
            )
            total = max(0.0, spent + granted)
            crossed = not warned and total >= budget.threshold()
            if add == 0 and granted <= 0 and not crossed:
                self._seen[(key, window.start)] = (spent, window.end)
                return 0.0  # nothing to write: refused
            value = f"{total!r} {1 if warned or crossed else 0}".encode()
            try:
                if revision is None:
                    await kv.create(name, value)
                else:
                    await kv.update(name, value, last=revision)
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
                continue  # another replica moved it (or created it first): read it again
            self._seen[(key, window.start)] = (total, window.end)
            if crossed and self.on_warning is not None:
                self.on_warning(BudgetWarning(budget, key, total, window))
            return granted
        return 0.0  # contention beyond reason: refuse this round, briefly

    def amounts(self) -> dict[tuple[str, float], float]:
        """The shared amounts as last seen, less this replica's own unspent slices (plus its debts),
        plus what it counted alone while NATS was away. Other replicas' unspent slices count as
        spent, as in the shared amount itself."""
        amounts = {}
        for slot, (shared, _) in self._seen.items():
            piece = self._slices.get(slot)
            amounts[slot] = max(0.0, shared - (piece.left if piece is not None else 0.0))
        for slot, spent in self.local.amounts().items():
            amounts[slot] = amounts.get(slot, 0.0) + spent
        return amounts

    def _share(self, budget: Budget) -> Budget:
        """The budget's share for one replica of those last counted, while NATS is away."""
        count = max(1, self.replicas())
        share = self._shares.get((budget, count))
        if share is None:
            if len(self._shares) > 1000:
                self._shares.clear()
            share = self._shares[(budget, count)] = budget.share(count)
        return share
