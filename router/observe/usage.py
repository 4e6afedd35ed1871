"""Usage metering: what each agent's tool calls cost, counted per minute and read per period.

One `add()` per `tools/call` after its reply has left (server/bookkeeping.py): agent, its groups
(the credential's and the policy's), the namespace it called in (`/mcp/{namespace}`; "" for
`/mcp`), server, tool, outcome, duration, request and response bytes, estimated response tokens (4 bytes each, as
output limits estimate), and cost units from the catalog's `cost: {per_call, per_kb}` (per_kb is
per 1,024 bytes of response). Totals are kept per (minute, agent, server, tool) in this replica's
memory — a dict update, no I/O — and `query()` sums minutes into minutes, hours or days, grouped
by any of agent, group, namespace, server and tool (by group, a call of an agent in two groups
counts in both groups' rows; an agent in none is group ""). Minutes older than `retention` are dropped on the minute tick.

This is the embedded default: one replica's own calls. With NATS, router/cluster/usage.py
shares them: each replica's minutes go to a JetStream stream and every replica sums them all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

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
        groups: str = "",
        namespace: str = "",
    ) -> None:
        """`groups`: the agent's groups, sorted and joined with commas ("" for none)."""

    def query(
        self,
        *,
        agent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        by: Iterable[str] = DEFAULT_BY,
        period: Period = "hour",
    ) -> list[dict[str, Any]]: ...


Row = tuple[Any, ...]
"""(minute, agent, server, tool, *totals, groups, namespace): how minutes travel between
replicas (a row of a replica from before groups and namespace ends with the totals)."""
Key = tuple[int, str, str, str, str, str]  # (minute, agent, server, tool, groups, namespace)


class UsageLedger:
    """Per-minute totals in this process: the embedded default, and what the shared form
    (router/cluster/usage.py) keeps of every replica's minutes."""

    def __init__(self, retention: float = 7 * 86400) -> None:
        self.retention = retention
        self._minutes: dict[Key, Totals] = {}
        self._pruned_at = 0

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
        groups: str = "",
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
        totals.errors += 0 if ok else 1
        totals.duration_ms += seconds * 1000
        totals.request_bytes += request_bytes
        totals.response_bytes += response_bytes
        totals.tokens += -(-response_bytes // BYTES_PER_TOKEN)
        totals.cost += cost

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

    def drain(self) -> list[Row]:
        """Every minute's totals as rows, and forget them (the shared form's outbox)."""
        rows: list[Row] = [
            (
                minute,
                agent,
                server,
                tool,
                *(getattr(totals, name) for name in TOTAL_FIELDS),
                groups,
                namespace,
            )
            for (minute, agent, server, tool, groups, namespace), totals in self._minutes.items()
        ]
        self._minutes.clear()
        return rows

    def _prune(self, minute: int) -> None:
        self._pruned_at = minute
        oldest = minute - self.retention
        for key in [key for key in self._minutes if key[0] < oldest]:
            del self._minutes[key]

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
            for group in groups.split(",") if "group" in keep else ("",):
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
