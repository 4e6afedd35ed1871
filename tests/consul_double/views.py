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


def check_json(state: ConsulState, check: CheckRecord) -> JSON:
    """A health check as the catalog has it (output the agent has not synced yet is not shown)."""
    return {
        "Node": state.config.node_name,
        "CheckID": check.check_id,
        "Name": check.name,
        "Status": check.synced_status,
        "Notes": check.notes,
        "Output": check.synced_output,
        "ServiceID": check.service_id,
        "ServiceName": check.service_name,
        "ServiceTags": list(check.service_tags),
        "Type": check.type,
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": check.create_index,
        "ModifyIndex": check.modify_index,
    }


def health_entry_json(state: ConsulState, instance: HealthInstance) -> JSON:
    """One element of ``/v1/health/service/:name``."""
    return {
        "Node": node_json(state),
        "Service": health_service_json(instance.service),
        "Checks": [check_json(state, c) for c in instance.checks],
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
