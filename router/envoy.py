"""The Envoy bootstrap for router replicas behind one address (`toolmesh up` and the cluster tests).

One builder, so what the tests prove about the balancer is what `toolmesh up` runs:
- ring hash on `Mcp-Session-Id`, so a legacy session's requests go to one replica while it lives
  (requests without one, `initialize` and 2026-07-28 stateless requests, land anywhere);
- active health checks on `/readyz` (200 while NATS is down: a degraded replica still serves);
- no overall timeout and an hour of idle time, since SSE streams last as long as a client listens;
- retries of every request whose connection broke before a response came back (`reset`: the
  replica died, or Envoy wrote the request on a kept-alive connection the replica had just
  dropped), each on a replica not tried before for that request: without `previous_hosts` the ring
  hash picks the dead replica again for every retry of a session that hashed to it; and enough
  retries may be in flight at once for every request that finds a replica gone. A retried tool
  call never runs twice: the replicas record the calls they start under the request's
  `x-request-id`, which Envoy sets once per client request and keeps on its retries (see
  `router/relay/attempts.py`), and answer a retry of a call a dead replica started with an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ROUTER_FILTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
MANAGER = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
PREVIOUS_HOSTS = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def envoy_bootstrap(
    listen_port: int,
    admin_port: int,
    router_ports: Sequence[int],
    *,
    check_interval: float = 2.0,
    check_timeout: float = 1.0,
    unhealthy_threshold: int = 2,
    connect_timeout: float = 2.0,
) -> dict[str, Any]:
    """Envoy listening on `listen_port` (loopback) in front of routers on `router_ports`.

    The defaults suit a machine people use; tests pass shorter checks so a killed replica is out
    within a few hundred milliseconds."""
    endpoints = [{"endpoint": {"address": _address(port)}} for port in router_ports]
    route = {
        "cluster": "routers",
        "timeout": "0s",
        "idle_timeout": "3600s",
        "hash_policy": [{"header": {"header_name": "mcp-session-id"}}],
        "retry_policy": {
            "retry_on": "connect-failure,refused-stream,reset-before-request,reset",
            # With backoff (25 ms doubling) these span the time health checks need to take a dead
            # replica out; until then the ring may offer it again.
            "num_retries": 5,
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {"@type": PREVIOUS_HOSTS},
                }
            ],
            "host_selection_retry_max_attempts": 10,
        },
    }
    manager = {
        "@type": MANAGER,
        "stat_prefix": "mcp",
        "stream_idle_timeout": "3600s",
        "request_timeout": "0s",
        "route_config": {
            "name": "mcp",
            "virtual_hosts": [
                {"name": "routers", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": route}]}
            ],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_FILTER}}],
    }
    health_check = {
        "timeout": _seconds(check_timeout),
        "interval": _seconds(check_interval),
        # Envoy checks a cluster without traffic only every 60 s by default, so a replica that
        # failed its first check would stay out a minute.
        "no_traffic_interval": _seconds(check_interval),
        "unhealthy_interval": _seconds(check_interval),
        "unhealthy_threshold": unhealthy_threshold,
        "healthy_threshold": 1,
        "http_health_check": {"path": "/readyz"},
    }
    listener = {
        "name": "mcp",
        "address": _address(listen_port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }
    cluster = {
        "name": "routers",
        "type": "STATIC",
        "connect_timeout": _seconds(connect_timeout),
        "lb_policy": "RING_HASH",
        "load_assignment": {"cluster_name": "routers", "endpoints": [{"lb_endpoints": endpoints}]},
        "health_checks": [health_check],
        # Envoy allows 3 retries in flight per cluster by default: when a replica dies under load,
        # every request that finds it gone needs one at the same moment, and the rest would fail
        # with 503 instead of going to another replica.
        "circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "max_retries": 1024}]},
    }
    return {
        "admin": {"address": _address(admin_port)},
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
    }
