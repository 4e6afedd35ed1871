"""Calling a capability: pick a provider by strategy, call it, fail over only where it is safe.

Order (`Capabilities.order`), over the providers the agent's view lets it use:
- `priority`: as declared;
- `fastest`: lowest latency EWMA first (alpha 0.3 over successful calls; a provider never
  measured counts as 0, so it gets measured);
- `cheapest`: lowest `cost` first;
- `healthiest`: lowest failure EWMA first (1 per failed call, 0 per success, alpha 0.3).
Ties keep the declared order. A provider whose server has every breaker open is skipped while
it is (its breaker decides when it is tried again).

Failover: the next provider is tried when the call never reached this one
(`BackendUnreachable`: refused, not connected, breaker open, busy) and, when the provider tool
is declared safe to repeat (the catalog's per-tool `"retry": "safe"` or its annotations, as
`upstream/caller.py` decides for retries across instances), also after it reached it and
failed (timeout, connection lost). Anything else, and any answer the provider gave (a JSON-RPC
error or `isError`), is the call's outcome. The result's `_meta["toolmesh/provider"]` names
the provider and why it was chosen.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from router.catalog.capabilities import CapabilitySpec, ProviderSpec
from router.catalog.index import Index, Target
from router.errors import BackendError, BackendUnreachable

PROVIDER_META = "toolmesh/provider"
ALPHA = 0.3


@dataclass(slots=True)
class Stats:
    """What this replica has seen of one provider tool."""

    latency: float | None = None  # EWMA of successful calls, seconds
    failures: float = 0.0  # EWMA of failed calls (1) and successes (0)
    calls: int = 0
    last_error: str | None = None

    def succeeded(self, seconds: float) -> None:
        self.calls += 1
        self.latency = seconds if self.latency is None else ALPHA * seconds + (1 - ALPHA) * self.latency
        self.failures *= 1 - ALPHA

    def failed(self, error: str) -> None:
        self.calls += 1
        self.failures = ALPHA + (1 - ALPHA) * self.failures
        self.last_error = error


@dataclass(slots=True)
class Serving:
    """Which provider served a capability last, and why (for /admin/ and `toolmesh status`)."""

    tool: str
    reason: str
    at: float = field(default_factory=time.time)


Invoke = Callable[[Target, dict[str, Any], str], Awaitable[dict[str, Any]]]
"""Call one provider: its target, the params as it takes them, its exposed catalog name."""


class Capabilities:
    """Per-replica provider statistics and the call loop; the dispatcher owns one."""

    def __init__(self, is_open: Callable[[str], bool], may_repeat: Callable[[str, str], bool]) -> None:
        self.is_open = is_open  # every breaker of the server open
        self.may_repeat = may_repeat
        self.stats: dict[str, Stats] = {}
        self.serving: dict[str, Serving] = {}

    def _stats(self, tool: str) -> Stats:
        stats = self.stats.get(tool)
        if stats is None:
            stats = self.stats[tool] = Stats()
        return stats

    def order(
        self, spec: CapabilitySpec, usable: list[tuple[ProviderSpec, Target]]
    ) -> list[tuple[ProviderSpec, Target, str]]:
        """The providers to try, best first, each with the reason it is where it is."""
        ready = [(p, t) for p, t in usable if not self.is_open(t.server)]
        strategy = spec.strategy
        if strategy == "fastest":
            ranked = sorted(ready, key=lambda pt: self._stats(pt[0].tool).latency or 0.0)
            return [(p, t, f"fastest: latency EWMA {_ms(self._stats(p.tool).latency)}") for p, t in ranked]
        if strategy == "cheapest":
            ranked = sorted(ready, key=lambda pt: pt[0].cost)
            return [(p, t, f"cheapest: cost {p.cost:g}") for p, t in ranked]
        if strategy == "healthiest":
            ranked = sorted(ready, key=lambda pt: self._stats(pt[0].tool).failures)
            return [(p, t, f"healthiest: failure EWMA {self._stats(p.tool).failures:.2f}") for p, t in ranked]
        return [(p, t, f"priority {i + 1}") for i, (p, t) in enumerate(ready)]

    async def call(
        self,
        name: str,
        spec: CapabilitySpec,
        usable: list[tuple[ProviderSpec, Target]],
        params: dict[str, Any],
        invoke: Invoke,
    ) -> dict[str, Any]:
        """Call providers in order until one answers or a failure must not be repeated."""
        ranked = self.order(spec, usable)
        if not ranked:
            servers = ", ".join(sorted({t.server for _, t in usable})) or "none"
            raise BackendUnreachable(
                servers, f"capability {name!r}: no provider can take the call (breakers open or none usable)"
            )
        skipped: list[str] = []
        for position, (provider, target, reason) in enumerate(ranked):
            stats = self._stats(provider.tool)
            call = {**params, "name": target.name, "arguments": provider.arguments(params.get("arguments"))}
            started = time.perf_counter()
            try:
                result = await invoke(target, call, provider.tool)
            except BackendError as exc:
                stats.failed(exc.message)
                last = position + 1 == len(ranked)
                if last or not (
                    isinstance(exc, BackendUnreachable) or self.may_repeat(target.server, target.name)
                ):
                    raise
                skipped.append(f"{provider.tool}: {exc.message}")
                continue
            stats.succeeded(time.perf_counter() - started)
            why = reason if not skipped else f"{reason}; after {'; '.join(skipped)}"
            self.serving[name] = Serving(provider.tool, why)
            own = result.get("_meta")  # the backend's, whatever its shape
            meta = {
                **(own if isinstance(own, dict) else {}),
                PROVIDER_META: {"tool": provider.tool, "server": target.server, "reason": why},
            }
            return {**result, "_meta": meta}
        raise AssertionError("unreachable: the last provider's failure is raised")

    def report(self) -> dict[str, Any]:
        return {
            "serving": {
                name: {"tool": s.tool, "reason": s.reason, "at": round(s.at, 3)}
                for name, s in self.serving.items()
            },
            "providers": {
                tool: {
                    "latency_ms": None if s.latency is None else round(s.latency * 1000, 3),
                    "failure_ewma": round(s.failures, 3),
                    "calls": s.calls,
                    "last_error": s.last_error,
                }
                for tool, s in sorted(self.stats.items())
            },
        }


def _ms(seconds: float | None) -> str:
    return "unmeasured" if seconds is None else f"{seconds * 1000:.2f} ms"


def usable_providers(
    spec: CapabilitySpec, index: Index, allows: Callable[[str, str], bool]
) -> list[tuple[ProviderSpec, Target]]:
    """The providers in the catalog now that `allows(server, tool)` (the agent's view)."""
    out = []
    for provider in spec.providers:
        target = index.tools.get(provider.tool)
        if target is not None and allows(target.server, provider.tool):
            out.append((provider, target))
    return out
