"""What each budget has spent, for operators: `/admin/` (and `toolmesh status`), the console, and
the Prometheus gauges `toolmesh_budget_spent` and `toolmesh_budget_limit`.

Read from the budget store (`BudgetStore.amounts`) when a page or a scrape asks, never on a
call's path. With NATS, a replica reports the shared amount as it last read or wrote it (each
lease and each refusal does), less its own unspent slices: other replicas' unspent slices count
as spent, as they do in the shared amount, and the figure may lag the other replicas by what
they spent since this one last leased.

A per-agent budget (`"agent": "*"`) is one budget per agent: its `spent` is what the agent
closest to the limit spent this window, and the agents themselves are listed in `/admin/` (the
busiest first) and become a label of the gauges only with `metrics_agent_label`, so that
Prometheus labels stay a closed set (budget names come from the policy).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from router.guard.budgets import Budget, BudgetStore, Window

TOP_AGENTS = 20  # agents of a per-agent budget listed in /admin/, the busiest first


@dataclass(frozen=True, slots=True)
class Spending:
    """One budget in its current window: what its subject spent (a per-agent budget: the most
    any agent spent) and, for a per-agent budget, what each agent spent."""

    budget: Budget
    window: Window
    spent: float
    agents: dict[str, float]


def spending(budgets: Sequence[Budget], store: BudgetStore, now: float) -> list[Spending]:
    amounts = store.amounts()
    shown = []
    for budget in budgets:
        window = budget.window(now)
        if budget.each_agent:
            prefix = f"{budget.name}."  # budget names have no dots: no other budget's keys match
            agents = {
                budget.agent_of(key): used
                for (key, start), used in amounts.items()
                if start == window.start and key.startswith(prefix)
            }
            spent = max(agents.values(), default=0.0)
        else:
            agents = {}
            spent = amounts.get((budget.name, window.start), 0.0)
        shown.append(Spending(budget, window, spent, agents))
    return shown


def report(budgets: Sequence[Budget], store: BudgetStore, now: float | None = None) -> list[dict[str, Any]]:
    """The budgets of the policy in force as `/admin/` shows them, in the policy's order."""
    rows = []
    for item in spending(budgets, store, time.time() if now is None else now):
        budget = item.budget
        row: dict[str, Any] = {
            "name": budget.name,
            "subject": "each agent" if budget.each_agent else budget.subject(""),
            "unit": budget.unit,
            "limit": _amount(budget.limit, budget.unit),
            "period": budget.period,
            "spent": _amount(item.spent, budget.unit),
            "warn_at": budget.warn_at,
            "resets_at": _iso(item.window.end),
        }
        if budget.each_agent:
            busiest = sorted(item.agents.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_AGENTS]
            row["agents"] = {agent: _amount(used, budget.unit) for agent, used in busiest}
            row["agents_counted"] = len(item.agents)
        rows.append(row)
    return rows


class BudgetGauges(Collector):
    """`toolmesh_budget_spent` and `toolmesh_budget_limit` by budget and period (and agent with
    `metrics_agent_label`), computed at scrape time from the store."""

    SPENT = ("toolmesh_budget_spent", "What a budget spent in its current window (calls or cost units).")
    LIMIT = ("toolmesh_budget_limit", "A budget's limit per window (calls or cost units).")

    def __init__(
        self,
        budgets: Callable[[], Sequence[Budget]],
        store: BudgetStore,
        registry: CollectorRegistry,
        *,
        agent_label: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budgets, self.store, self.clock = budgets, store, clock
        self.labels = ["budget", "period", *(["agent"] if agent_label else [])]
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(*self.SPENT, labels=self.labels)
        yield GaugeMetricFamily(*self.LIMIT, labels=self.labels)

    def collect(self) -> Iterator[Metric]:
        spent = GaugeMetricFamily(*self.SPENT, labels=self.labels)
        limit = GaugeMetricFamily(*self.LIMIT, labels=self.labels)
        with_agent = len(self.labels) == 3
        for item in spending(self.budgets(), self.store, self.clock()):
            budget = item.budget
            series: list[tuple[list[str], float]]
            if not with_agent:
                series = [([budget.name, budget.period], item.spent)]
            elif budget.each_agent:
                per_agent = sorted(item.agents.items()) or [("", 0.0)]
                series = [([budget.name, budget.period, agent], used) for agent, used in per_agent]
            else:
                series = [([budget.name, budget.period, budget.agent or ""], item.spent)]
            for labels, used in series:
                spent.add_metric(labels, used)
                limit.add_metric(labels, budget.limit)
        yield spent
        yield limit


def _amount(value: float, unit: str) -> float | int:
    """Calls as a whole number, cost units as they are (rounded to a millionth)."""
    return round(value) if unit == "calls" else round(value, 6)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
