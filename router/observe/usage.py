"""Usage metering: what each agent's tool calls cost, counted per minute and read per period.

One `add()` per `tools/call` after its reply has left (server/bookkeeping.py): agent, its groups
(the credential's and the policy's), the namespace it called in (`/mcp/{namespace}`; "" for
`/mcp`), server, tool, outcome, duration, request and response bytes, estimated response tokens (4 bytes each, as
output limits estimate), and cost units from the catalog's `cost: {per_call, per_kb}` (per_kb is
per 1,024 bytes of response). Totals are kept per (minute, agent, server, tool) in this replica's
memory — a dict update, no I/O — and `query()` sums minutes into minutes, hours or days, grouped
by any of agent, group, namespace, server and tool (by group, a call of an agent in two groups
counts in both groups' rows; an agent in none is group ""). Minutes older than `retention` are dropped on the minute tick.

The Prometheus counters of usage (`UsageCounters`: response bytes and cost units by server and
tool) are read from the same totals when `/metrics` is scraped, not counted a second time per
call: minutes before the current one are folded into running sums once, when the first call of
a new minute arrives (the same pass that drops old minutes) or when the shared form drains
them, so a scrape adds only the current minute's few totals to those sums.

This is the embedded default: one replica's own calls. With NATS, router/cluster/usage.py
shares them: each replica's minutes go to a JetStream stream and every replica sums them all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

Period = Literal["minute", "hour", "day"]
PERIODS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
DIMENSIONS = ("agent", "group", "namespace", "server", "tool")
DEFAULT_BY = ("agent", "server", "tool")
BYTES_PER_TOKEN = 4


@dataclass(slots=True)
class Totals:
    calls: int = 0
    errors: int = 0
    duration_ms: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    tokens: int = 0
    cost: float = 0.0

    def add(self, other: Totals) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.duration_ms += other.duration_ms
        self.request_bytes += other.request_bytes
        self.response_bytes += other.response_bytes
        self.tokens += other.tokens
        self.cost += other.cost


TOTAL_FIELDS = tuple(f.name for f in fields(Totals))


class Usage(Protocol):
    """Where calls are counted and read: `UsageLedger` (one replica) or the shared form."""

    # `add` writes each call to disk (the shared form's spool): it is called just before the
    # call's reply is written rather than after (server/bookkeeping.py).
    spooled: bool

    def add(
        self,
        agent: str,
        server: str,
        tool: str,
        ok: bool,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
        cost: float,
        now: float | None = None,
        groups: Groups = "",
        namespace: str = "",
    ) -> None:
        """`groups`: the agent's groups, sorted and joined with commas ("" for none), or the pair
        of sets they are made of (see `Groups`)."""

    def query(
        self,
        *,
        agent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        by: Iterable[str] = DEFAULT_BY,
        period: Period = "hour",
    ) -> list[dict[str, Any]]: ...

    def counted(self) -> dict[tuple[str, str, str], list[float]]:
        """This replica's own calls since it started: (server, tool, agent) -> [response bytes,
        cost units], for the Prometheus counters (`UsageCounters`)."""
        ...


Groups = str | tuple[frozenset[str], frozenset[str]]
"""An agent's groups as usage records them: sorted and joined with commas ("" for none). The call
path gives the pair (its credential's groups, the groups the policy puts it in) instead, which
the ledger keeps in its keys as it is and joins when the totals are read (`groups_text`), so a
call does no join and no lookup for it."""
Row = tuple[Any, ...]
"""(minute, agent, server, tool, *totals, groups, namespace): how minutes travel between
replicas (a row of a replica from before groups and namespace ends with the totals)."""
Key = tuple[int, str, str, str, Groups, str]  # (minute, agent, server, tool, groups, namespace)
Counted = dict[tuple[str, str, str], list[float]]  # (server, tool, agent) -> [response bytes, cost]


class UsageLedger:
    """Per-minute totals in this process: the embedded default, and what the shared form
    (router/cluster/usage.py) keeps of every replica's minutes."""

    spooled = False

    def __init__(self, retention: float = 7 * 86400) -> None:
        self.retention = retention
        self._minutes: dict[Key, Totals] = {}
        self._pruned_at = 0
        # Minutes before `_folded_until` are already in `_folded` (what `counted()` reports).
        self._folded: Counted = {}
        self._folded_until = 0
        self._joined: dict[tuple[frozenset[str], frozenset[str]], str] = {}

    def add(
        self,
        agent: str,
        server: str,
        tool: str,
        ok: bool,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
        cost: float,
        now: float | None = None,
        groups: Groups = "",
        namespace: str = "",
    ) -> None:
        minute = int((time.time() if now is None else now) // 60) * 60
        key = (minute, agent, server, tool, groups, namespace)
        totals = self._minutes.get(key)
        if totals is None:
            totals = self._minutes[key] = Totals()
            if minute != self._pruned_at:
                self._prune(minute)
        totals.calls += 1
        if not ok:
            totals.errors += 1
        totals.duration_ms += seconds * 1000
        totals.request_bytes += request_bytes
        totals.response_bytes += response_bytes
        totals.tokens += -(-response_bytes // BYTES_PER_TOKEN)
        totals.cost += cost
        if minute < self._folded_until:  # a clock stepped back (or a test's `now`): fold it too
            self._fold_one(server, tool, agent, response_bytes, cost)

    def merge(self, rows: Iterable[Row]) -> None:
        """Add totals counted elsewhere (another replica's minutes)."""
        width = len(TOTAL_FIELDS)
        for minute, agent, server, tool, *rest in rows:
            groups, namespace = rest[width : width + 2] if len(rest) >= width + 2 else ("", "")
            key = (int(minute), agent, server, tool, groups, namespace)
            totals = self._minutes.get(key)
            if totals is None:
                totals = self._minutes[key] = Totals()
            totals.add(Totals(*rest[:width]))

    def rows(self) -> list[Row]:
        """Every minute's totals as rows (what `drain` returns, without forgetting them)."""
        return [
            (
                minute,
                agent,
                server,
                tool,
                *(getattr(totals, name) for name in TOTAL_FIELDS),
                self.groups_text(groups),
                namespace,
            )
            for (minute, agent, server, tool, groups, namespace), totals in self._minutes.items()
        ]

    def drain(self) -> list[Row]:
        """Every minute's totals as rows, and forget them (the shared form's outbox)."""
        rows = self.rows()
        self._fold(float("inf"))
        self._minutes.clear()
        return rows

    def groups_text(self, groups: Groups) -> str:
        """`groups` as usage records them: sorted and comma-joined (a pair joined once)."""
        if isinstance(groups, str):
            return groups
        joined = self._joined.get(groups)
        if joined is None:
            if len(self._joined) >= 4096:
                self._joined.clear()
            joined = self._joined[groups] = ",".join(sorted(groups[0] | groups[1]))
        return joined

    def counted(self) -> Counted:
        """This ledger's own `add`s since it started: (server, tool, agent) -> [response bytes,
        cost]; the folded earlier minutes plus the minutes not folded yet (the current one)."""
        counted = {key: list(sums) for key, sums in self._folded.items()}
        for (minute, agent, server, tool, _, _), totals in self._minutes.items():
            if minute >= self._folded_until:
                sums = counted.setdefault((server, tool, agent), [0.0, 0.0])
                sums[0] += totals.response_bytes
                sums[1] += totals.cost
        return counted

    def _prune(self, minute: int) -> None:
        self._pruned_at = minute
        self._fold(minute)
        oldest = minute - self.retention
        for key in [key for key in self._minutes if key[0] < oldest]:
            del self._minutes[key]

    def _fold(self, until: float) -> None:
        """Add the minutes in [`_folded_until`, `until`) to the running sums `counted()` reads."""
        start = self._folded_until
        if until <= start:
            return
        for (minute, agent, server, tool, _, _), totals in self._minutes.items():
            if start <= minute < until:
                self._fold_one(server, tool, agent, totals.response_bytes, totals.cost)
        if until != float("inf"):
            self._folded_until = int(until)

    def _fold_one(self, server: str, tool: str, agent: str, response_bytes: float, cost: float) -> None:
        sums = self._folded.get((server, tool, agent))
        if sums is None:
            sums = self._folded[(server, tool, agent)] = [0.0, 0.0]
        sums[0] += response_bytes
        sums[1] += cost

    def query(
        self,
        *,
        agent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        by: Iterable[str] = DEFAULT_BY,
        period: Period = "hour",
    ) -> list[dict[str, Any]]:
        """Rows of totals per period start and the `by` dimensions, oldest first."""
        step = PERIODS[period]
        keep = [d for d in DIMENSIONS if d in set(by)]  # in DIMENSIONS' order
        out: dict[tuple[Any, ...], Totals] = {}  # (period start, *dimensions)
        for (minute, who, server, tool, groups, namespace), totals in list(self._minutes.items()):
            if agent is not None and who != agent:
                continue
            if (since is not None and minute < since) or (until is not None and minute >= until):
                continue
            values = {"agent": who, "namespace": namespace, "server": server, "tool": tool}
            for group in self.groups_text(groups).split(",") if "group" in keep else ("",):
                values["group"] = group
                key = (minute // step * step, *(values[d] for d in keep))
                row_totals = out.get(key)
                if row_totals is None:
                    row_totals = out[key] = Totals()
                row_totals.add(totals)
        rows = []
        for key in sorted(out):
            totals = out[key]
            row: dict[str, Any] = {"start": _iso(key[0])}
            row.update(zip(keep, key[1:], strict=True))
            row.update({name: getattr(totals, name) for name in TOTAL_FIELDS})
            row["duration_ms"] = round(row["duration_ms"], 3)
            row["cost"] = round(row["cost"], 6)
            rows.append(row)
        return rows


def _iso(seconds: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class UsageCounters(Collector):
    """`toolmesh_usage_response_bytes_total` and `toolmesh_usage_cost_units_total` by server and
    tool (and agent with `metrics_agent_label`), read from the usage totals at scrape time."""

    BYTES = ("toolmesh_usage_response_bytes", "Bytes of tool results sent to agents, by server and tool.")
    COST = (
        "toolmesh_usage_cost_units",
        "Cost units of tool calls (the catalog's `cost`), by server and tool.",
    )

    def __init__(self, usage: Usage, registry: CollectorRegistry, *, agent_label: bool = False) -> None:
        self.usage = usage
        self.labels = ["server", "tool", *(["agent"] if agent_label else [])]
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(*self.BYTES, labels=self.labels)
        yield CounterMetricFamily(*self.COST, labels=self.labels)

    def collect(self) -> Iterator[Metric]:
        with_agent = len(self.labels) == 3
        sums: Counted = {}
        for (server, tool, agent), (response_bytes, cost) in self.usage.counted().items():
            kept = sums.setdefault((server, tool, agent if with_agent else ""), [0.0, 0.0])
            kept[0] += response_bytes
            kept[1] += cost
        sent = CounterMetricFamily(*self.BYTES, labels=self.labels)
        spent = CounterMetricFamily(*self.COST, labels=self.labels)
        for key, (response_bytes, cost) in sums.items():
            labels = list(key if with_agent else key[:2])
            sent.add_metric(labels, response_bytes)
            if cost:
                spent.add_metric(labels, cost)
        yield sent
        yield spent
