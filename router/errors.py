"""The exceptions toolmesh raises, in one tree.

    ToolmeshError
    ├── ConfigError            a setting or catalog entry is wrong; names the field and the fix
    ├── RPCError               answered to the client as a JSON-RPC error (code, message, data)
    │   └── BackendError       a backend could not answer: names the server
    │       ├── BackendUnavailable   not connected, or its process died
    │       │   └── BackendUnreachable   the request never reached the backend (refused,
    │       │       │                    not connected, queue full); safe to send elsewhere
    │       │       ├── CircuitOpen      its breaker is open: fail fast, say when it is retried
    │       │       └── BackendBusy      its concurrency limit and queue are full
    │       └── BackendTimeout       no answer within the configured timeout
    ├── RateLimited            an agent, server or tool went over its rate limit
    ├── BudgetExceeded         an agent or group spent its budget for the period
    ├── CallInterrupted        a load balancer's retry of a call whose replica died running it
    ├── ResultTooLarge         a tool's result is over its output limit (refused, not cut)
    └── SessionExpired         an upstream session was forgotten by its server (HTTP 404)

Library errors (aiohttp, OSError, anyio) are translated into these at the upstream boundary,
so the relay and the server never see a transport's own exception types.
"""

from __future__ import annotations

import time
from typing import Any

# JSON-RPC and MCP error codes used by the router.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
# Server-defined range (-32000..-32099): backend trouble seen by the router.
BACKEND_UNAVAILABLE = -32001
BACKEND_TIMEOUT = -32002
BACKEND_BUSY = -32003
RATE_LIMITED = -32004
CALL_INTERRUPTED = -32005
RESULT_TOO_LARGE = -32006
POLICY_DENIED = -32007
BUDGET_EXCEEDED = -32008


class ToolmeshError(Exception):
    """Base of every error toolmesh raises on purpose."""


class ConfigError(ToolmeshError):
    """A configuration problem, phrased for the person who must fix it."""

    def __init__(self, where: str, problem: str, fix: str = "") -> None:
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}" + (f" ({fix})" if fix else ""))


class RPCError(ToolmeshError):
    """An error that becomes a JSON-RPC error object for the client."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code, self.message, self.data = code, message, data
        super().__init__(message)

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class BackendError(RPCError):
    """A backend failed to answer; the message always names the server."""

    def __init__(self, code: int, server: str, message: str) -> None:
        self.server = server
        super().__init__(code, message, {"server": server})


class BackendUnavailable(BackendError):
    def __init__(self, server: str, reason: str) -> None:
        super().__init__(BACKEND_UNAVAILABLE, server, f"server '{server}' is unavailable: {reason}")


class BackendUnreachable(BackendUnavailable):
    """Nothing answered at the address: the request never reached the backend."""


class CircuitOpen(BackendUnreachable):
    """The instance's breaker is open; the router did not send the request."""

    def __init__(self, server: str, retry_in: float) -> None:
        self.retry_in = retry_in
        super().__init__(server, f"circuit open after repeated failures; next trial in {retry_in:.1f} s")
        self.data = {"server": server, "retryAfter": round(retry_in, 3)}


class BackendBusy(BackendUnreachable):
    """Every slot and queue place of the instance is taken (or the queue wait ran out)."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(server, reason)
        self.code = BACKEND_BUSY


class BackendTimeout(BackendError):
    def __init__(self, server: str, seconds: float) -> None:
        super().__init__(BACKEND_TIMEOUT, server, f"server '{server}' did not answer within {seconds:g} s")


class RateLimited(RPCError):
    """A call went over a rate limit; `retry_after` says when the next one would be admitted."""

    def __init__(self, limit: str, retry_after: float) -> None:
        self.limit, self.retry_after = limit, retry_after
        super().__init__(
            RATE_LIMITED,
            f"rate limit {limit} exceeded; retry after {retry_after:.3f} s",
            {"limit": limit, "retryAfter": round(retry_after, 3)},
        )


class BudgetExceeded(RPCError):
    """A call over an agent's or group's budget (router/guard/budgets.py): names the budget, its
    limit and period, and when it resets (`retry_after` seconds from now)."""

    def __init__(
        self,
        budget: str,
        subject: str,
        unit: str,
        limit: float,
        period: str,
        resets: float,
        retry_after: float,
    ) -> None:
        self.budget, self.unit, self.retry_after = budget, unit, retry_after
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(resets))
        amount = f"{limit:g} calls" if unit == "calls" else f"{limit:g} cost units"
        super().__init__(
            BUDGET_EXCEEDED,
            f"budget '{budget}' of {subject} is spent ({amount} per {period}); it resets at {at} "
            f"(in {retry_after:.0f} s)",
            {"budget": budget, "unit": unit, "limit": int(limit) if unit == "calls" else limit,
             "period": period, "resetsAt": at, "retryAfter": round(retry_after, 3)},
        )  # fmt: skip


class CallInterrupted(RPCError):
    """A request the load balancer sent again after the replica running it died: the tool may
    or may not have run, so it is not run a second time (see `router/relay/attempts.py`)."""

    def __init__(self, tool: str) -> None:
        super().__init__(
            CALL_INTERRUPTED,
            f"the replica handling this call of '{tool}' died while it ran; it may or may not have "
            "taken effect, and was not run again (send it as a new request to run it again)",
            {"tool": tool, "interrupted": True},
        )


class ResultTooLarge(RPCError):
    """A tool's result is over its output limit and was refused (router/relay/output_limit.py)."""

    def __init__(self, server: str, tool: str, setting: str, size: int, limit: int, why: str) -> None:
        super().__init__(
            RESULT_TOO_LARGE,
            f"result of tool '{tool}' on server '{server}' is {size} bytes, over its output limit "
            f"{setting} ({limit} bytes){why}",
            {"server": server, "tool": tool, "limit": setting, "limitBytes": limit, "resultBytes": size},
        )


class PolicyDenied(RPCError):
    """A call of a tool the agent may see, refused by a policy rule's condition on this call
    (router/guard/conditions.py); the full reason goes in the audit record, not to the client."""

    def __init__(self, tool: str) -> None:
        super().__init__(
            POLICY_DENIED,
            f"the policy does not allow this call of tool '{tool}' (its conditions look at the "
            "arguments and the caller); ask an operator which calls are allowed",
            {"tool": tool},
        )


class SessionExpired(ToolmeshError):
    """The upstream server answered 404 for our session id: initialize again."""
