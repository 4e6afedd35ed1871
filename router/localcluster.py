"""The shape of a `toolmesh up` cluster: every address, chosen before anything starts (`Plan`),
and the Envoy and Prometheus configs that follow from it. `router/up/` starts the parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router.up.processes import free_port


@dataclass(frozen=True)
class Plan:
    """Every address of one local cluster, chosen before anything starts."""

    routers: int
    port: int
    nats_port: int = field(default_factory=free_port)
    nats_monitor_port: int = field(default_factory=free_port)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    envoy_admin_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    notes_port: int = field(default_factory=free_port)
    units_port: int = field(default_factory=free_port)
    router_ports: tuple[int, ...] = ()

    @classmethod
    def make(cls, routers: int, port: int) -> Plan:
        return cls(routers, port or free_port(), router_ports=tuple(free_port() for _ in range(routers)))

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def router_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.router_ports[index]}"


def envoy_config(plan: Plan) -> dict[str, Any]:
    """Envoy as the single address: ring hash on Mcp-Session-Id, /readyz checks, SSE-safe timeouts."""
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
        for port in plan.router_ports
    ]
    route = {
        "cluster": "routers",
        "timeout": "0s",  # no overall limit: an SSE stream lasts as long as the client listens
        "idle_timeout": "3600s",
        # No session id (initialize, 2026-07-28 stateless requests): Envoy picks a replica at random.
        "hash_policy": [{"header": {"header_name": "mcp-session-id"}}],
        # Try another replica only when the request cannot have reached one: a tool call may not
        # be safe to repeat.
        "retry_policy": {"retry_on": "connect-failure,reset-before-request", "num_retries": 2},
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "mcp",
        "stream_idle_timeout": "3600s",
        "request_timeout": "0s",
        "route_config": {
            "name": "mcp",
            "virtual_hosts": [
                {"name": "routers", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": route}]}
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": plan.envoy_admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "mcp",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": plan.port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "routers",
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "lb_policy": "RING_HASH",
                    "load_assignment": {
                        "cluster_name": "routers",
                        "endpoints": [{"lb_endpoints": endpoints}],
                    },
                    "health_checks": [
                        {
                            "timeout": "1s",
                            "interval": "2s",
                            # Envoy checks a cluster that has had no traffic only every 60 s by
                            # default, so a replica that failed its first check would stay out a minute.
                            "no_traffic_interval": "2s",
                            "unhealthy_threshold": 2,
                            "healthy_threshold": 1,
                            "http_health_check": {"path": "/readyz"},
                        }
                    ],
                }
            ],
        },
    }


def prometheus_config(plan: Plan) -> dict[str, Any]:
    """Prometheus scraping every replica and Envoy, as compose/prometheus/prometheus.yml does."""
    return {
        "global": {"scrape_interval": "5s"},
        "scrape_configs": [
            {
                "job_name": "toolmesh",
                "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in plan.router_ports]}],
            },
            {
                "job_name": "envoy",
                "metrics_path": "/stats/prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{plan.envoy_admin_port}"]}],
            },
        ],
    }
