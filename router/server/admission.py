"""Admission: who is asking, or why they may not, decided before a request body is read.

Every endpoint that calls tools (`/mcp` and `/v1/tools`) admits through `Admission.admit`, so
they share one set of checks: Host and Origin (`security.py`, against DNS rebinding), then
identity (`guard/identity.py`) and the agent's policy view (`guard/views.py`). The result is an
`Admitted` caller, passed explicitly down the request path, or a `Refusal` each endpoint renders
in its own format. The media-type checks of a request are here too, as predicates the
endpoints answer in their own words.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import NamedTuple

from router.guard.agent import ANONYMOUS, Agent, AuthError
from router.guard.guard import Guard
from router.guard.identity import Authenticator
from router.guard.views import OPEN, View
from router.observe import tracing
from router.observe.metrics import Metrics
from router.server.replies import Scope
from router.server.security import OriginPolicy


class Admitted(NamedTuple):
    """Who sent the HTTP request being served, as `Admission.admit` decided: the agent, what it
    may see, and the trace the request continues (None with trace propagation off). A named
    tuple: one is built per request, at a fraction of a frozen dataclass's cost."""

    agent: Agent
    view: View
    trace: tracing.Trace | None
    namespace: str | None = None  # the namespace of the endpoint (`/mcp/{namespace}`), if any


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is turned away before it is read: an HTTP status, a reason, extra headers."""

    status: int
    reason: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class Admission:
    def __init__(
        self,
        origins: OriginPolicy,
        metrics: Metrics,
        *,
        auth: Authenticator | None = None,
        guard: Guard | None = None,
        trace: bool = True,
    ) -> None:
        self.origins = origins
        self.metrics = metrics
        self.auth = auth
        self.guard = guard
        self.trace = trace

    async def admit(
        self, scope: Scope, headers: dict[str, str], namespace: str | None = None
    ) -> Admitted | Refusal:
        """Host and Origin checks, then identity: 421, 403 or 401, or the admitted caller.

        With `namespace` (the endpoint is `/mcp/{namespace}`), the caller's view is its view inside
        that namespace, and a namespace that does not exist for this agent is a 404 (one it may
        not enter answers the same, after authentication, so nothing is told to strangers)."""
        if not self.origins.host_ok(headers.get("host")):
            return Refusal(421, "Invalid Host header")
        if not self.origins.origin_ok(headers.get("origin")):
            return Refusal(403, "Invalid Origin header")
        agent = ANONYMOUS
        if self.auth is not None:
            try:
                agent = await self.auth.authenticate(headers, scope.get("client"))
            except AuthError as exc:
                self.metrics.auth_failures.labels(exc.reason).inc()
                challenge = [
                    (b"www-authenticate", self.auth.challenge(scope.get("scheme", "http"), headers, exc))
                ]
                return Refusal(401, exc.description, challenge)
        if namespace is not None:
            inside = self.guard.namespace_view(agent, namespace) if self.guard is not None else None
            if inside is None:
                return Refusal(404, f"no such namespace: {namespace} (the whole catalog is at /mcp)")
            view = inside
        else:
            view = self.guard.view(agent) if self.guard is not None else OPEN
        trace = tracing.start(headers.get("traceparent")) if self.trace else None
        return Admitted(agent, view, trace, namespace)


def accepts_json_and_sse(headers: dict[str, str]) -> bool:
    """Does the request's Accept take both reply forms of an MCP POST (JSON and SSE)?"""
    json, sse = _accepted(headers.get("accept", ""))
    return json and sse


def accepts_sse(headers: dict[str, str]) -> bool:
    """Does the request's Accept take an SSE stream (a GET stream)?"""
    return _accepted(headers.get("accept", ""))[1]


def sends_json(headers: dict[str, str], *, unlabelled_ok: bool = False) -> bool:
    """Is the body declared `application/json` (or, with `unlabelled_ok`, not declared at all)?"""
    content_type = headers.get("content-type")
    if content_type is None:
        return unlabelled_ok
    return _media_type(content_type) == "application/json"


@functools.lru_cache(maxsize=256)
def _media_type(content_type: str) -> str:
    """`type/subtype` of a Content-Type, parameters dropped, in lower case (RFC 9110 8.3.1)."""
    return content_type.partition(";")[0].strip().lower()


@functools.lru_cache(maxsize=256)
def _accepted(accept: str) -> tuple[bool, bool]:
    """Does `accept` take application/json, and text/event-stream? Each is decided by the most
    specific media range that matches it (exact, then `type/*`, then `*/*`), and a range with
    `q=0` refuses (RFC 9110 12.5.1). Few distinct Accept values exist: the answer is cached."""
    best: dict[str, tuple[int, float]] = {}  # wanted type -> (specificity, q) of its best range
    for item in accept.split(","):
        media, _, parameters = item.partition(";")
        media = media.strip().lower()
        q = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        for wanted in ("application/json", "text/event-stream"):
            kind = wanted.partition("/")[0]
            specificity = 2 if media == wanted else 1 if media == f"{kind}/*" else 0 if media == "*/*" else -1
            if specificity >= 0 and specificity >= best.get(wanted, (-1, 0.0))[0]:
                best[wanted] = (specificity, q)
    return (
        best.get("application/json", (-1, 0.0))[1] > 0,
        best.get("text/event-stream", (-1, 0.0))[1] > 0,
    )
