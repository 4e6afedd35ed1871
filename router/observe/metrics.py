"""Prometheus metrics, in a registry of their own per router (tests run several in one process).

Label values come from closed sets only: MCP method names the router knows, outcomes, and server
names from the catalog. Never session or agent ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Tool calls can take up to a minute; the default buckets stop at 10 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
KNOWN_METHODS = frozenset(
    {
        "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
        "resources/templates/list", "resources/read", "completion/complete", "logging/setLevel",
        "server/discover",
    }
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "toolmesh_requests", "MCP requests answered, by method and outcome.", ["method", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "toolmesh_request_duration_seconds", "Time to answer an MCP request.", ["method"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.sessions = Gauge(
            "toolmesh_sessions", "Legacy sessions held by this replica.", registry=self.registry
        )
        self.catalog_items = Gauge(
            "toolmesh_catalog_items",
            "Items in the aggregated catalog, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.backend_up = Gauge(
            "toolmesh_backend_up", "1 if the backend instance is connected and ready.", ["server", "instance"],
            registry=self.registry,
        )  # fmt: skip
        self.catalog_conflicts = Gauge(
            "toolmesh_catalog_conflicts",
            "Names withheld because two servers offer them.",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, outcome: str, seconds: float) -> None:
        children = self._children.get((method, outcome))
        if children is None:
            label = method if method in KNOWN_METHODS else "other"
            children = (self.requests.labels(label, outcome), self.latency.labels(label))
            self._children[(method, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)
