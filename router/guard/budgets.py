"""Budgets: how many calls, or how many cost units, an agent or a group may spend per period.

Declared in the policy document under `budgets` (docs/usage.md#budgets):

    "budgets": {"ops-daily":  {"group": "ops", "period": "day", "calls": 1000, "warn_at": 0.8},
                "bob-spend":  {"agent": "bob", "period": "month", "cost": 50},
                "each-agent": {"agent": "*", "period": "hour", "calls": 200}}

A budget covers one agent, every agent on its own (`"agent": "*"`), or a group's members
together. Periods are fixed windows in UTC: `minute`, `hour`, `day`, `month` (calendar month),
or a duration (`30s`, `15m`, `12h`, `7d`, aligned to multiples of it since the epoch); a budget
resets at its window's end. A `calls` budget counts every tool call it admits, whatever its
outcome; a `cost` budget counts the cost units of the catalog's `cost: {per_call, per_kb}`,
known only once the result is in, so it is charged after the call and admits a call while
anything is left (docs/usage.md bounds the overshoot that allows).

The seam is `BudgetStore`: `take` (admit one call, or refuse), `refund` (a call budget's call
that a later check refused), `charge` (a cost budget's units after the call). The memory store
is exact for one replica; the NATS store (router/cluster/budgets.py) leases slices of the shared
remainder so the hot path does no round trip per call. Both call `on_warning` once per budget,
subject and window when the spent amount first reaches `warn_at` of the limit.

Speed: a View carries the budgets that apply to its scope (`View.budgets`, empty without any),
so a call under a policy without budgets does no budget work at all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.errors import BudgetExceeded
from router.guard.ratelimit import key_part

Unit = Literal["calls", "cost"]
NAMED_PERIODS = {"minute": 60, "hour": 3600, "day": 86400, "month": 0}
_DURATION = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
_SECONDS_OF = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_PERIOD = 31 * 86400
BUDGET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
PERIOD_FIX = "use minute, hour, day, month, or a duration such as 30s, 15m, 12h, 7d (at most 31d)"


def period_seconds(period: str) -> int:
    """A period's length in seconds; 0 for a calendar month. Raises ValueError naming the fix."""
    named = NAMED_PERIODS.get(period)
    if named is not None:
        return named
    match = _DURATION.match(period)
    if match is None:
        raise ValueError(f"period {period!r} is not a period; {PERIOD_FIX}")
    seconds = int(match.group(1)) * _SECONDS_OF[match.group(2)]
    if seconds > MAX_PERIOD:
        raise ValueError(f"period {period!r} is longer than 31 days; {PERIOD_FIX}")
    return seconds


class BudgetSpec(BaseModel):
    """One budget as the policy document writes it."""

    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(default=None, min_length=1, description="An agent id, or * for each agent.")
    group: str | None = Field(default=None, min_length=1, description="A group: its members together.")
    period: str = Field(description="minute, hour, day, month, or a duration such as 30s, 15m, 12h, 7d.")
    calls: int | None = Field(default=None, ge=1, description="Tool calls allowed per period.")
    cost: float | None = Field(default=None, gt=0, description="Cost units allowed per period.")
    warn_at: float = Field(default=0.8, gt=0, le=1, description="Fraction of the limit that warns.")

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        period_seconds(value)
        return value

    @model_validator(mode="after")
    def _one_subject_one_limit(self) -> BudgetSpec:
        if (self.agent is None) == (self.group is None):
            raise ValueError('name exactly one of `agent` (an id, or "*" for each agent) and `group`')
        if (self.calls is None) == (self.cost is None):
            raise ValueError("set exactly one of `calls` (tool calls per period) and `cost` (cost units)")
        return self


@dataclass(frozen=True, slots=True)
class Window:
    """One period of a budget: [start, end) in wall-clock seconds."""

    start: float
    end: float


def window_at(seconds: int, now: float) -> Window:
    if seconds:
        start = now // seconds * seconds
        return Window(start, start + seconds)
    day = datetime.fromtimestamp(now, UTC)
    first = datetime(day.year, day.month, 1, tzinfo=UTC)
    following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return Window(first.timestamp(), following.timestamp())


class Budget:
    """A budget compiled for the call path: its window and its keys are computed once each."""

    __slots__ = (
        "_keys",
        "_window",
        "agent",
        "group",
        "limit",
        "name",
        "period",
        "seconds",
        "spec",
        "unit",
        "warn_at",
    )  # fmt: skip

    def __init__(self, name: str, spec: BudgetSpec) -> None:
        self.name, self.spec = name, spec
        self.unit: Unit = "calls" if spec.calls is not None else "cost"
        self.limit = float(spec.calls if spec.calls is not None else spec.cost or 0.0)
        self.period = spec.period
        self.seconds = period_seconds(spec.period)
        self.warn_at = spec.warn_at
        self.agent, self.group = spec.agent, spec.group
        self._window = Window(0.0, 0.0)
        self._keys: dict[str, str] = {}

    @property
    def each_agent(self) -> bool:
        return self.agent == "*"

    def applies(self, agent: str, groups: frozenset[str]) -> bool:
        return self.agent in ("*", agent) if self.group is None else self.group in groups

    def window(self, now: float) -> Window:
        window = self._window
        if not window.start <= now < window.end:
            window = self._window = window_at(self.seconds, now)
        return window

    def key(self, agent: str) -> str:
        """What the budget is counted under: its name, plus the agent for a per-agent budget."""
        if not self.each_agent:
            return self.name
        key = self._keys.get(agent)
        if key is None:
            key = f"{self.name}.{key_part(agent)}"
            if len(self._keys) >= 10_000:
                self._keys.clear()
            self._keys[agent] = key
        return key

    def agent_of(self, key: str) -> str:
        """The agent a per-agent budget's key counts (`key`'s own tail if no call named it lately)."""
        for agent, known in self._keys.items():
            if known == key:
                return agent
        return key.partition(".")[2]

    def subject(self, agent: str) -> str:
        """Whose budget it is, in words: `agent bob`, `group ops`."""
        return (
            f"group {self.group}"
            if self.group is not None
            else f"agent {agent if self.each_agent else self.agent}"
        )

    def describe(self) -> str:
        amount = f"{self.limit:g} calls" if self.unit == "calls" else f"{self.limit:g} cost units"
        return f"{amount} per {self.period}"

    def threshold(self) -> float:
        return self.warn_at * self.limit

    def share(self, count: int) -> Budget:
        """This budget divided among `count` replicas (each counting alone while NATS is away)."""
        if self.spec.calls is not None:
            return Budget(self.name, self.spec.model_copy(update={"calls": max(1, self.spec.calls // count)}))
        return Budget(self.name, self.spec.model_copy(update={"cost": (self.spec.cost or 0.0) / count}))


@dataclass(frozen=True, slots=True)
class BudgetWarning:
    """A budget's spending reached its `warn_at` fraction in one window (told once per window)."""

    budget: Budget
    key: str
    used: float
    window: Window


OnWarning = Callable[[BudgetWarning], None]


class BudgetStore(Protocol):
    name: str

    async def take(self, key: str, budget: Budget, window: Window) -> bool:
        """Admit one call against `key` in `window` (a call budget counts it now); False: refused."""
        ...

    def refund(self, key: str, budget: Budget, window: Window) -> None:
        """Give back the call `take` counted moments ago (a later check refused the call)."""
        ...

    def charge(self, key: str, budget: Budget, window: Window, amount: float) -> None:
        """Count a cost budget's units once the call's cost is known."""
        ...

    def amounts(self) -> dict[tuple[str, float], float]:
        """What each key spent per window start, as this replica knows it (for operators:
        router/guard/budget_report.py); read when a page or a scrape asks, never per call."""
        ...


@dataclass(slots=True)
class _Spent:
    used: float
    end: float
    warned: bool = False


class MemoryBudgetStore:
    """Budgets counted in this process: exact for one replica; the NATS store's fallback."""

    name = "memory"

    def __init__(self, on_warning: OnWarning | None = None) -> None:
        self.on_warning = on_warning
        self._spent: dict[tuple[str, float], _Spent] = {}
        self._pruned_at = 0.0

    def _slot(self, key: str, window: Window) -> _Spent:
        slot = self._spent.get((key, window.start))
        if slot is None:
            if window.start > self._pruned_at:  # a new window began: forget the ended ones
                self._pruned_at = window.start
                self._forget_ended(window.start)
            slot = self._spent[(key, window.start)] = _Spent(0.0, window.end)
        return slot

    def take_now(self, key: str, budget: Budget, window: Window) -> bool:
        slot = self._slot(key, window)
        if budget.unit == "calls":
            if slot.used + 1 > budget.limit:
                return False
            slot.used += 1
            self._note(slot, key, budget, window)
            return True
        return slot.used < budget.limit

    async def take(self, key: str, budget: Budget, window: Window) -> bool:
        return self.take_now(key, budget, window)

    def refund(self, key: str, budget: Budget, window: Window) -> None:
        slot = self._spent.get((key, window.start))
        if slot is not None:
            slot.used -= 1

    def charge(self, key: str, budget: Budget, window: Window, amount: float) -> None:
        slot = self._slot(key, window)
        slot.used += amount
        self._note(slot, key, budget, window)

    def used(self, key: str, window: Window) -> float:
        slot = self._spent.get((key, window.start))
        return slot.used if slot is not None else 0.0

    def amounts(self) -> dict[tuple[str, float], float]:
        return {slot: spent.used for slot, spent in self._spent.items()}

    def _note(self, slot: _Spent, key: str, budget: Budget, window: Window) -> None:
        if not slot.warned and slot.used >= budget.threshold():
            slot.warned = True
            if self.on_warning is not None:
                self.on_warning(BudgetWarning(budget, key, slot.used, window))

    def _forget_ended(self, now: float) -> None:
        for key in [key for key, slot in self._spent.items() if slot.end <= now]:
            del self._spent[key]


Held = list[tuple[str, Budget, Window]]


class Budgets:
    """Checks a call against the budgets of the caller's view; raises BudgetExceeded naming the
    budget, its limit, period and reset. What a call took is `Held` for `refund` and `charge`."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        clock: Callable[[], float] = time.time,
        on_exceeded: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_exceeded = on_exceeded

    async def check(self, agent: str, budgets: Sequence[Budget]) -> Held:
        now = self.clock()
        held: Held = []
        for budget in budgets:
            window = budget.window(now)
            key = budget.key(agent)
            if not await self.store.take(key, budget, window):
                self.refund(held)  # a refused call spends nothing of the budgets before
                if self.on_exceeded is not None:
                    self.on_exceeded(budget.name)
                raise BudgetExceeded(
                    budget.name, budget.subject(agent), budget.unit, budget.limit, budget.period,
                    window.end, max(0.0, window.end - self.clock()),
                )  # fmt: skip
            held.append((key, budget, window))
        return held

    def refund(self, held: Held) -> None:
        for key, budget, window in held:
            if budget.unit == "calls":
                self.store.refund(key, budget, window)

    def charge(self, held: Held, cost: float) -> None:
        if cost <= 0:
            return
        for key, budget, window in held:
            if budget.unit == "cost":
                self.store.charge(key, budget, window, cost)
