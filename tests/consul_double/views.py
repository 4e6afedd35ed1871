"""JSON shapes of Consul's HTTP API, rendered from the state model.

The quirks are Consul's and are kept on purpose because clients must cope with them:
``Tags`` is always a list, but a health entry's ``Service.Meta`` is ``null`` when the
service was registered without meta (the agent endpoints and ``/v1/catalog/service`` give
``{}``); ``Service.Address`` stays empty when none was registered (clients fall back to
``Node.Address``); node-level checks such as ``serfHealth`` appear in every health entry.
"""

from __future__ import annotations

import base64
from typing import Any

from .state import CheckRecord, ConsulState, HealthInstance, KVEntry, ServiceRecord

JSON = dict[str, Any]


def _tagged_addresses(address: str) -> dict[str, str]:
    return {"lan": address, "lan_ipv4": address, "wan": address, "wan_ipv4": address}


def _node_meta(state: ConsulState) -> dict[str, str]:
    return {"consul-network-segment": "", "consul-version": state.config.version}


def node_json(state: ConsulState) -> JSON:
    """The ``Node`` object of a health entry."""
    return {
        "ID": state.node_id,
        "Node": state.config.node_name,
        "Address": state.config.node_address,
        "Datacenter": state.config.datacenter,
        "TaggedAddresses": _tagged_addresses(state.config.node_address),
        "Meta": _node_meta(state),
        "CreateIndex": state.node_create_index,
        "ModifyIndex": state.node_create_index,
    }


def _weights(service: ServiceRecord) -> dict[str, int]:
    return {"Passing": service.weights[0], "Warning": service.weights[1]}


def _proxy() -> JSON:
    return {"Mode": "", "MeshGateway": {}, "Expose": {}}


def health_service_json(service: ServiceRecord) -> JSON:
    """The ``Service`` object of a health entry (Consul's NodeService)."""
    return {
        "ID": service.id,
        "Service": service.name,
        "Tags": list(service.tags or ()),
        "Address": service.address,
        "Meta": dict(service.meta) if service.meta is not None else None,
        "Port": service.port,
        "Weights": _weights(service),
        "EnableTagOverride": service.enable_tag_override,
        "Proxy": _proxy(),
        "Connect": {},
        "PeerName": "",
        "CreateIndex": service.create_index,
        "ModifyIndex": service.modify_index,
    }


def check_json(state: ConsulState, check: CheckRecord, agent_view: bool = False) -> JSON:
    """A health check; the agent view shows output the catalog has not received yet."""
    status = check.status if agent_view else check.synced_status
    output = check.output if agent_view else check.synced_output
    out: JSON = {
        "Node": state.config.node_name,
        "CheckID": check.check_id,
        "Name": check.name,
        "Status": status,
        "Notes": check.notes,
        "Output": output,
        "ServiceID": check.service_id,
        "ServiceName": check.service_name,
        "ServiceTags": list(check.service_tags),
        "Type": check.type,
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
    }
    if not agent_view:
        out["CreateIndex"] = check.create_index
        out["ModifyIndex"] = check.modify_index
    return out


def health_entry_json(state: ConsulState, instance: HealthInstance) -> JSON:
    """One element of ``/v1/health/service/:name``."""
    return {
        "Node": node_json(state),
        "Service": health_service_json(instance.service),
        "Checks": [check_json(state, c) for c in instance.checks],
    }


def catalog_service_json(state: ConsulState, service: ServiceRecord) -> JSON:
    """One element of ``/v1/catalog/service/:name`` (Consul's ServiceNode)."""
    return {
        "ID": state.node_id,
        "Node": state.config.node_name,
        "Address": state.config.node_address,
        "Datacenter": state.config.datacenter,
        "TaggedAddresses": _tagged_addresses(state.config.node_address),
        "NodeMeta": _node_meta(state),
        "ServiceKind": "",
        "ServiceID": service.id,
        "ServiceName": service.name,
        "ServiceTags": list(service.tags or ()),
        "ServiceAddress": service.address,
        "ServiceWeights": _weights(service),
        "ServiceMeta": dict(service.meta or {}),
        "ServicePort": service.port,
        "ServiceEnableTagOverride": service.enable_tag_override,
        "ServiceProxy": _proxy(),
        "ServiceConnect": {},
        "CreateIndex": service.create_index,
        "ModifyIndex": service.modify_index,
    }


def agent_service_json(state: ConsulState, service: ServiceRecord) -> JSON:
    """An entry of ``/v1/agent/services`` (Consul's api.AgentService)."""
    return {
        "ID": service.id,
        "Service": service.name,
        "Tags": list(service.tags or ()),
        "Meta": dict(service.meta or {}),
        "Port": service.port,
        "Address": service.address,
        "Weights": _weights(service),
        "EnableTagOverride": service.enable_tag_override,
        "Datacenter": state.config.datacenter,
    }


def kv_json(entry: KVEntry) -> JSON:
    """A KV entry; ``Value`` is base64, or null for an empty value."""
    return {
        "LockIndex": entry.lock_index,
        "Key": entry.key,
        "Flags": entry.flags,
        "Value": base64.b64encode(entry.value).decode("ascii") if entry.value is not None else None,
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    }


def agent_self_json(state: ConsulState) -> JSON:
    """A minimal ``/v1/agent/self``: enough for clients that read the datacenter or version."""
    cfg = state.config
    return {
        "Config": {
            "Datacenter": cfg.datacenter,
            "PrimaryDatacenter": cfg.datacenter,
            "NodeName": cfg.node_name,
            "NodeID": state.node_id,
            "Server": True,
            "Revision": "toolmesh-double",
            "Version": cfg.version,
        },
        "DebugConfig": {},
        "Coord": None,
        "Member": {
            "Name": cfg.node_name,
            "Addr": cfg.node_address,
            "Port": 8301,
            "Tags": {"dc": cfg.datacenter, "role": "consul", "build": cfg.version},
            "Status": 1,
        },
        "Stats": {},
        "Meta": _node_meta(state),
    }
