"""Usage metering: what each agent's tool calls cost, counted per minute and read per period.

One `add()` per `tools/call` after its reply has left (server/bookkeeping.py): agent, server,
tool, outcome, duration, request and response bytes, estimated response tokens (4 bytes each, as
output limits estimate), and cost units from the catalog's `cost: {per_call, per_kb}` (per_kb is
per 1,024 bytes of response). Totals are kept per (minute, agent, server, tool) in this replica's
memory — a dict update, no I/O — and `query()` sums minutes into minutes, hours or days, grouped
by any of agent, server and tool. Minutes older than `retention` are dropped on the minute tick.

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
DIMENSIONS = ("agent", "server", "tool")
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
    ) -> None: ...

    def query(
        self,
        *,
        agent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        by: Iterable[str] = DIMENSIONS,
        period: Period = "hour",
    ) -> list[dict[str, Any]]: ...


Row = tuple[int, str, str, str, int, int, float, int, int, int, float]
"""(minute, agent, server, tool, *totals): how minutes travel between replicas."""


class UsageLedger:
    """Per-minute totals in this process: the embedded default, and what the shared form
    (router/cluster/usage.py) keeps of every replica's minutes."""

    def __init__(self, retention: float = 7 * 86400) -> None:
        self.retention = retention
        self._minutes: dict[tuple[int, str, str, str], Totals] = {}
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
    ) -> None:
        minute = int((time.time() if now is None else now) // 60) * 60
        key = (minute, agent, server, tool)
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
        for minute, agent, server, tool, *values in rows:
            key = (int(minute), agent, server, tool)
            totals = self._minutes.get(key)
            if totals is None:
                totals = self._minutes[key] = Totals()
            totals.add(Totals(*values))  # type: ignore[arg-type]

    def drain(self) -> list[Row]:
        """Every minute's totals as rows, and forget them (the shared form's outbox)."""
        rows: list[Row] = [
            (minute, agent, server, tool, *(getattr(totals, name) for name in TOTAL_FIELDS))
            for (minute, agent, server, tool), totals in self._minutes.items()
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
        by: Iterable[str] = DIMENSIONS,
        period: Period = "hour",
    ) -> list[dict[str, Any]]:
        """Rows of totals per period start and the `by` dimensions, oldest first."""
        step = PERIODS[period]
        keep = [DIMENSIONS.index(d) for d in by]
        groups: dict[tuple[Any, ...], Totals] = {}  # (period start, *dimensions)
        for (minute, *dims), totals in list(self._minutes.items()):
            if agent is not None and dims[0] != agent:
                continue
            if (since is not None and minute < since) or (until is not None and minute >= until):
                continue
            key = (minute // step * step, *(dims[i] for i in keep))
            group = groups.get(key)
            if group is None:
                group = groups[key] = Totals()
            group.add(totals)
        rows = []
        for key in sorted(groups):
            totals = groups[key]
            row: dict[str, Any] = {"start": _iso(key[0])}
            row.update({DIMENSIONS[i]: value for i, value in zip(keep, key[1:], strict=True)})
            row.update({name: getattr(totals, name) for name in TOTAL_FIELDS})
            row["duration_ms"] = round(row["duration_ms"], 3)
            row["cost"] = round(row["cost"], 6)
            rows.append(row)
        return rows


def _iso(seconds: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
