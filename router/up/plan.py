"""The shape of a `toolmesh up` cluster: every address, chosen before anything starts (`Plan`),
and the Envoy and Prometheus configs that follow from it. `cluster.py` starts the parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.envoy import envoy_bootstrap
from router.up.processes import free_ports


@dataclass(frozen=True)
class Plan:
    """Every address of one local cluster, chosen before anything starts."""

    routers: int
    port: int
    nats_port: int
    nats_monitor_port: int
    etcd_port: int
    etcd_peer_port: int
    envoy_admin_port: int
    prometheus_port: int
    notes_port: int
    units_port: int
    router_ports: tuple[int, ...] = ()

    @classmethod
    def make(cls, routers: int, port: int) -> Plan:
        """A plan whose every port differs from the others and from `port` (0: one is chosen)."""
        drawn = free_ports(8 + routers + (0 if port else 1), taken=(port,) if port else ())
        nats, monitor, etcd, peer, admin, prometheus, notes, units = drawn[:8]
        return cls(
            routers,
            port or drawn[-1],
            nats_port=nats,
            nats_monitor_port=monitor,
            etcd_port=etcd,
            etcd_peer_port=peer,
            envoy_admin_port=admin,
            prometheus_port=prometheus,
            notes_port=notes,
            units_port=units,
            router_ports=tuple(drawn[8 : 8 + routers]),
        )

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
    """Envoy as the single address (router/envoy.py): ring hash on Mcp-Session-Id, /readyz checks."""
    return envoy_bootstrap(plan.port, plan.envoy_admin_port, plan.router_ports)


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
