"""`GET /v1/usage`: usage totals (router/observe/usage.py) for an agent or, to an admin, all.

Query: `agent` (an admin may name anyone or leave it out for all; any other agent sees only its
own, and naming another is 403), `from` and `to` (ISO 8601 UTC or epoch seconds; `to` excluded),
`by` (comma-separated among agent, group, namespace, server, tool; default agent, server,
tool; by group, a call of an agent in two groups counts in both) and `period` (minute, hour
or day; default hour). The answer is `{"period", "from", "to", "rows": [...]}`, each row with
`start`, the `by` dimensions and calls, errors, duration_ms, request_bytes, response_bytes,
tokens, cost. Credentials are the same as `/mcp`'s; anonymous agents are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from router.guard.agent import AuthError
from router.guard.identity import Authenticator
from router.observe.metrics import Metrics
from router.observe.usage import DEFAULT_BY, DIMENSIONS, PERIODS, Usage
from router.server.replies import Scope, Send, decoded_headers, send_json, send_problem


class UsageEndpoint:
    def __init__(
        self, usage: Usage, auth: Authenticator, metrics: Metrics, admin_groups: frozenset[str]
    ) -> None:
        self.usage = usage
        self.auth = auth
        self.metrics = metrics
        self.admin_groups = admin_groups

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["method"] != "GET":
            await send_problem(send, 405, "use GET on /v1/usage", [(b"allow", b"GET")])
            return
        headers = decoded_headers(scope)
        try:
            agent = await self.auth.authenticate(headers, scope.get("client"))
        except AuthError as exc:
            self.metrics.auth_failures.labels(exc.reason).inc()
            await send_problem(
                send,
                401,
                exc.description,
                [(b"www-authenticate", self.auth.challenge(scope.get("scheme", "http"), headers, exc))],
            )
            return
        query = {key: values[-1] for key, values in parse_qs(scope.get("query_string", b"").decode()).items()}
        admin = not agent.anonymous and not agent.groups.isdisjoint(self.admin_groups)
        wanted = query.get("agent") or None
        if not admin:
            if agent.anonymous:
                await send_problem(send, 401, "usage needs credentials")
                return
            if wanted is not None and wanted != agent.id:
                await send_problem(send, 403, f"agent {agent.id!r} may read only its own usage")
                return
            wanted = agent.id
        try:
            since, until = _time(query.get("from")), _time(query.get("to"))
            by = [d.strip() for d in query.get("by", ",".join(DEFAULT_BY)).split(",") if d.strip()]
            unknown = [d for d in by if d not in DIMENSIONS]
            if unknown:
                raise ValueError(f"`by` takes {', '.join(DIMENSIONS)}, not {', '.join(unknown)}")
            period = query.get("period", "hour")
            if period not in PERIODS:
                raise ValueError(f"`period` is one of {', '.join(PERIODS)}, not {period!r}")
        except ValueError as exc:
            await send_problem(send, 400, str(exc))
            return
        rows = self.usage.query(agent=wanted, since=since, until=until, by=by, period=period)
        await send_json(
            send, 200, {"period": period, "from": query.get("from"), "to": query.get("to"), "rows": rows}
        )


def _time(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time: give ISO 8601 (2026-12-02T08:00:00Z) or epoch seconds"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
