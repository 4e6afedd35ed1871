"""Prometheus metrics, in a registry of their own per router (tests run several in one process).

Names carry the `toolmesh_` prefix; counters end in `_total` and durations are in seconds, as
Prometheus conventions ask. Label values come from closed sets only: MCP method names the router
knows, outcomes, failure reasons, and server and tool names from the catalog (bounded by it).
Never session ids; agent ids only when `metrics_agent_label` is set (then bounded by the keys
and tokens an operator issues).

Adding a metric for a new feature (breakers, rate limits, the registry, NATS): create it with
`registry=metrics.registry` in the feature's own module, or add it here beside its peers; it is
served at `/metrics` with no further wiring.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from router.observe.tally import TallyCounter, TallyHistogram

# Tool calls can take up to a minute; the default buckets stop at 10 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
KNOWN_METHODS = frozenset(
    {
        "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
        "resources/templates/list", "resources/read", "completion/complete", "logging/setLevel",
        "server/discover", "resources/subscribe", "resources/unsubscribe", "subscriptions/listen",
    }
)  # fmt: skip


# How `toolmesh_breaker_state` encodes a breaker's state (router/upstream/breaker.py).
BREAKER_STATE_VALUE: dict[str, int] = {"closed": 0, "half-open": 1, "open": 2}


class Metrics:
    def __init__(self, agent_label: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.agent_label = agent_label
        r = self.registry
        # The per-request families are tallies (router/observe/tally.py): cheap on the hot path.
        self.requests = TallyCounter(
            "toolmesh_requests", "MCP requests answered, by method and outcome.", ["method", "outcome"], r
        )
        self.latency = TallyHistogram(
            "toolmesh_request_duration_seconds", "Time to answer an MCP request.", ["method"],
            LATENCY_BUCKETS, r,
        )  # fmt: skip
        call_labels = ["server", "method", "tool", "outcome", *(["agent"] if agent_label else [])]
        self.calls = TallyCounter(
            "toolmesh_calls",
            "Requests routed to a backend (calls, reads, prompts, completions), by server, tool and "
            "outcome (ok, tool_error, error, rejected, unavailable, timeout).",
            call_labels,
            r,
        )
        self.call_latency = TallyHistogram(
            "toolmesh_call_duration_seconds", "Time a routed request took, backend included.",
            ["server", "method"], LATENCY_BUCKETS, r,
        )  # fmt: skip
        self.sessions = Gauge("toolmesh_sessions", "Legacy sessions held by this replica.", registry=r)
        self.catalog_items = Gauge(
            "toolmesh_catalog_items", "Items in the aggregated catalog, by kind.", ["kind"], registry=r
        )
        self.catalog_servers = Gauge(
            "toolmesh_catalog_servers", "Servers with at least one ready instance.", registry=r
        )
        self.backend_up = Gauge(
            "toolmesh_backend_up", "1 if the backend instance is connected and ready.", ["server", "instance"],
            registry=r,
        )  # fmt: skip
        self.definition_repairs = Gauge(
            "toolmesh_definition_repairs",
            "Items of a server's list the router repaired (fields of the wrong type dropped, a "
            "missing inputSchema supplied) or left out (no name, uri or uriTemplate) at its last "
            "listing, so that typed clients can read the list.",
            ["server", "list"],
            registry=r,
        )
        self.catalog_conflicts = Gauge(
            "toolmesh_catalog_conflicts", "Names withheld because two servers offer them.", registry=r
        )
        self.auth_failures = Counter(
            "toolmesh_auth_failures", "Requests refused with 401, by reason.", ["reason"], registry=r
        )
        self.policy_generation = Gauge(
            "toolmesh_policy_generation", "Policy versions installed since start (0: no policy).", registry=r
        )
        self.policy_reloads = Counter(
            "toolmesh_policy_reloads", "Policy updates seen, by outcome (applied, rejected).", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.policy_decision_failures = Counter(
            "toolmesh_policy_decision_failures",
            "Rego decisions that failed and denied the call, by reason (error, timeout).", ["reason"], registry=r,
        )  # fmt: skip
        self.audit_dropped = Counter(
            "toolmesh_audit_dropped", "Audit records dropped because the sinks fell behind.", registry=r
        )
        self.breaker_state = Gauge(
            "toolmesh_breaker_state", "Circuit breaker per instance: 0 closed, 1 half-open, 2 open.",
            ["server", "instance"], registry=self.registry,
        )  # fmt: skip
        self.breaker_transitions = Counter(
            "toolmesh_breaker_transitions", "Breaker state changes, by the state entered.",
            ["server", "state"], registry=self.registry,
        )  # fmt: skip
        self.ratelimit_rejected = Counter(
            "toolmesh_ratelimit_rejected", "Tool calls refused by a rate limit, by server.", ["server"],
            registry=self.registry,
        )  # fmt: skip
        self.ratelimit_degraded = Gauge(
            "toolmesh_ratelimit_degraded",
            "1 while NATS is unreachable and rate limits are enforced locally (limit / replicas).",
            registry=self.registry,
        )
        self.ratelimit_replicas = Gauge(
            "toolmesh_ratelimit_replicas",
            "Router replicas seen sharing the rate limits.",
            registry=self.registry,
        )
        self.budget_exceeded = Counter(
            "toolmesh_budget_exceeded", "Tool calls refused because a budget was spent, by budget.",
            ["budget"], registry=self.registry,
        )  # fmt: skip
        self.budget_warnings = Counter(
            "toolmesh_budget_warnings", "Budgets that reached their warning fraction (once per window).",
            ["budget"], registry=self.registry,
        )  # fmt: skip
        self.connections_refused = Counter(
            "toolmesh_connections_refused",
            "Connections accepted past max_connections, answered 503 and closed.",
            registry=self.registry,
        )
        self.source_up = Gauge(
            "toolmesh_catalog_source_up",
            "1 while the catalog source (file, consul, etcd) is reachable; 0 means the last catalog is served.",
            ["source"],
            registry=self.registry,
        )

    def policy_decision_failed(self, reason: str) -> None:
        """A Rego decision failed and denied the call: `error` or `timeout` (guard/rego.py)."""
        self.policy_decision_failures.labels(reason).inc()

    def breaker_changed(self, server: str, instance: str, state: str, retry_in: float) -> None:
        """A breaker changed state (the breaker board's listener)."""
        self.breaker_state.labels(server, instance).set(BREAKER_STATE_VALUE[state])
        self.breaker_transitions.labels(server, state).inc()

    def rate_limited(self, server: str) -> None:
        """A call to `server` was refused by a rate limit (the limiter's callback)."""
        self.ratelimit_rejected.labels(server).inc()

    def over_budget(self, budget: str) -> None:
        """A call was refused by `budget` (a name from the policy document: a bounded label)."""
        self.budget_exceeded.labels(budget).inc()

    def observe_request(self, method: str, outcome: str, seconds: float) -> None:
        label = method if method in KNOWN_METHODS else "other"
        self.requests.inc((label, outcome))
        self.latency.observe((label,), seconds)

    def observe_call(
        self, server: str, method: str, tool: str, outcome: str, seconds: float, agent: str
    ) -> None:
        """`server` and `tool` must come from the catalog (the caller checks), so labels stay bounded."""
        key = (server, method, tool, outcome, agent) if self.agent_label else (server, method, tool, outcome)
        self.calls.inc(key)
        self.call_latency.observe((server, method), seconds)
