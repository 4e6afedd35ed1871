"""What happens after each request is answered: per-call metrics and the audit record.

It lives in `server/`, not `observe/`: it reads the relay's `CallContext`, and `observe/` (the
instruments: metrics, tracing, audit sinks) sits below `relay/`, which uses them.

`server/calls.py` calls `finished()` once per request with the CallContext the dispatcher filled
in (server, instance, target). List and ping requests only count toward the request metrics;
every request that names something (a tool, prompt, resource) is audited, including those that
were refused, since refusals are what an audit trail is for.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import orjson

from router.errors import BACKEND_TIMEOUT, BACKEND_UNAVAILABLE, BUDGET_EXCEEDED, INVALID_PARAMS, POLICY_DENIED
from router.guard.budgets import BudgetWarning
from router.observe.audit import AuditLog
from router.observe.metrics import Metrics
from router.observe.tracing import Trace
from router.observe.usage import Usage
from router.relay.context import CallContext

AUDITED = frozenset(
    {"tools/call", "prompts/get", "resources/read", "completion/complete", "resources/subscribe",
     "resources/unsubscribe"}
)  # fmt: skip
OUTCOME_OF_CODE = {
    BACKEND_UNAVAILABLE: "unavailable",
    BACKEND_TIMEOUT: "timeout",
    INVALID_PARAMS: "rejected",
    POLICY_DENIED: "denied",
    BUDGET_EXCEEDED: "over_budget",
}
METERED_OK = frozenset({"ok", "tool_error"})  # a call that returned a result (a tool error included)
log = logging.getLogger("toolmesh.budgets")


class Spans(Protocol):
    """Where finished requests become OpenTelemetry spans (router/observe/otel.py, if configured)."""

    def record(
        self,
        trace_ctx: Trace,
        *,
        method: str,
        path: str,
        seconds: float,
        upstream: tuple[float, float] | None,
        tool: str | None,
        server: str | None,
        instance: str | None,
        agent: str,
        outcome: str,
        error_code: int | None,
    ) -> None: ...


class CallObserver:
    def __init__(
        self, metrics: Metrics, audit: AuditLog | None, usage: Usage | None = None, spans: Spans | None = None
    ) -> None:
        self.spans = spans
        self.metrics = metrics
        self.audit = audit if audit is not None and audit.enabled else None
        # A tool call's usage is counted after its reply has left (`finished`), off the request
        # path; with a usage spool (`usage.spooled`) just before the reply is written
        # (`before_reply`), so that a kill between the two loses no answered call.
        self.early = usage if usage is not None and usage.spooled else None
        self.usage = usage if self.early is None else None

    def budget_warning(self, warning: BudgetWarning) -> None:
        """A budget reached its warning fraction (once per window): a log event, the metric
        `toolmesh_budget_warnings_total`, and an audit record (method `budget/warning`)."""
        budget, window = warning.budget, warning.window
        subject = budget.subject(warning.key.partition(".")[2] if budget.each_agent else "")
        detail = {
            "budget": budget.name, "subject": subject, "used": round(warning.used, 6), "limit": budget.limit,
            "unit": budget.unit, "period": budget.period, "warn_at": budget.warn_at,
            "resets": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window.end)),
        }  # fmt: skip
        log.warning("budget warning: %s of %s spent", f"{warning.used:g}", budget.describe(), extra=detail)
        self.metrics.budget_warnings.labels(budget.name).inc()
        if self.audit is not None:
            self.audit.record(
                agent=subject.partition(" ")[2] if budget.group is None else "",
                session=None, method="budget/warning", target=budget.name, server=None, instance=None,
                arguments=None, outcome="warning", error_code=None, seconds=0.0, trace_id="", span_id="",
                era="", via="", reason=f"{warning.used:g} of {budget.describe()} spent by {subject} "
                f"(warn_at {budget.warn_at:g}); resets {detail['resets']}",
            )  # fmt: skip

    def before_reply(
        self,
        ctx: CallContext,
        method: str,
        params: dict[str, Any],
        result: Any,
        error_code: int | None,
        seconds: float,
    ) -> None:
        """Just before a reply is written, with a usage spool: a tool call's usage (its line on
        disk, in `usage.add`), as `finished` counts it without one."""
        usage, server, tool = self.early, ctx.server, ctx.target
        if usage is None or method != "tools/call" or server is None or not tool:
            return
        arguments = params.get("arguments") if ctx.arguments is None else ctx.arguments
        view = ctx.view
        usage.add(  # `ok`: the call returned a result (a tool error included), so no error code
            ctx.agent.id, server, tool, error_code is None, seconds,
            len(orjson.dumps(arguments)) if arguments is not None else 0, ctx.result_bytes,
            ctx.cost, None, (ctx.agent.groups, view.groups), view.namespace_name,
        )  # fmt: skip

    def finished(
        self,
        ctx: CallContext,
        method: str,
        params: dict[str, Any],
        result: Any,
        error_code: int | None,
        seconds: float,
    ) -> None:
        if method not in AUDITED:
            return
        if error_code is not None:
            outcome = OUTCOME_OF_CODE.get(error_code, "error")
        elif isinstance(result, dict) and result.get("isError") is True:
            outcome = "tool_error"
        else:
            outcome = "ok"
        if ctx.server is not None:
            # The name the call resolved (ctx.server is set only then): the catalog's, or one an
            # override gave; never a guessed name, so the label's values stay a closed set.
            tool = ctx.target if method == "tools/call" else ""
            self.metrics.observe_call(ctx.server, method, tool or "", outcome, seconds, ctx.agent.id)
            if tool and self.usage is not None:
                arguments = params.get("arguments") if ctx.arguments is None else ctx.arguments
                view = ctx.view
                self.usage.add(
                    ctx.agent.id, ctx.server, tool, outcome in METERED_OK, seconds,
                    len(orjson.dumps(arguments)) if arguments is not None else 0, ctx.result_bytes,
                    ctx.cost, None, (ctx.agent.groups, view.groups), view.namespace_name,
                )  # fmt: skip
        if self.spans is not None and ctx.trace is not None:
            self.spans.record(
                ctx.trace,
                method=method,
                path="/mcp" if ctx.via == "mcp" else f"/v1/tools/{ctx.target}/call",
                seconds=seconds,
                upstream=ctx.upstream_time,
                tool=ctx.target if method == "tools/call" else None,
                server=ctx.server,
                instance=ctx.instance,
                agent=ctx.agent.id,
                outcome=outcome,
                error_code=error_code,
            )
        if self.audit is not None:
            trace = ctx.trace
            self.audit.record(
                agent=ctx.agent.id,
                session=ctx.session_id,
                method=method,
                target=ctx.target,
                server=ctx.server,
                instance=ctx.instance,
                arguments=(params.get("arguments") if ctx.arguments is None else ctx.arguments)
                if method in {"tools/call", "prompts/get"}
                else None,
                outcome=outcome,
                error_code=error_code,
                seconds=seconds,
                trace_id=trace.trace_id if trace else "",
                span_id=trace.span_id if trace else "",
                era=ctx.era,
                via=ctx.via,
                result=result if error_code is None else None,
                reason=ctx.denied,
            )
