"""`toolmesh status --router URL`: the router's `/admin/` document, printed for a person."""

from __future__ import annotations

import json
import sys
from typing import Any

from router.observe.router_client import TOKEN_ENV, RouterRequestFailed, get_json


def add_status_parser(commands: Any) -> None:
    status = commands.add_parser("status", help="show a running router's catalog, instances and health")
    status.add_argument("--router", required=True, help="the router's base URL, e.g. http://127.0.0.1:8080")
    status.add_argument("--token", help=f"an admin API key or token (default: ${TOKEN_ENV})")
    status.add_argument("--json", action="store_true", help="print the raw JSON")


def run_status(args: dict[str, Any]) -> int:
    try:
        document = get_json(args["router"], "/admin/", args.get("token"))
    except RouterRequestFailed as exc:
        print(f"toolmesh: status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2) if args.get("json") else render(document))
    return 0


def render(document: dict[str, Any]) -> str:
    catalog = document.get("catalog", {})
    items = catalog.get("items", {})
    lines = [
        f"health:    {document.get('health')}",
        f"sessions:  {document.get('sessions')}",
        f"catalog:   generation {catalog.get('generation')}, {len(catalog.get('servers', []))} servers, "
        + ", ".join(f"{count} {kind}" for kind, count in items.items()),
    ]
    policy = document.get("policy") or {}
    if policy.get("source"):
        error = f"  LAST UPDATE REJECTED: {policy['last_error']}" if policy.get("last_error") else ""
        lines.append(f"policy:    {policy['source']} (generation {policy.get('generation')}){error}")
    for name, namespace in (policy.get("namespaces") or {}).items():
        held = ", ".join(f"{count} {kind}" for kind, count in (namespace.get("items") or {}).items())
        lines.append(f"namespace: {namespace.get('endpoint', name)} ({namespace.get('title', name)}): {held}")
    overrides = policy.get("overrides") or {}
    if overrides.get("count"):
        lines.append(f"overrides: {overrides['count']}")
    for collision in overrides.get("collisions", []):
        where = f" in {collision['namespace']}" if collision.get("namespace") else ""
        lines.append(
            f"collision: {collision['name']}{where} given to {', '.join(collision['tools'])} (both withheld)"
        )
    for name, capability in (policy.get("capabilities") or {}).items():
        serving = capability.get("serving")
        now = f"served by {serving['tool']} ({serving['reason']})" if serving else "not called yet"
        providers = ", ".join(
            p["tool"] + ("" if p.get("in_catalog") else " (absent)") for p in capability["providers"]
        )
        lines.append(f"capability: {name} [{capability['strategy']}: {providers}] {now}")
    for budget in document.get("budgets", []):
        lines.append(f"budget:    {_budget(budget)}")
    for conflict in catalog.get("conflicts", []):
        lines.append(
            f"conflict:  {conflict['kind']} {conflict['name']} offered by {', '.join(conflict['servers'])}"
        )
    for server, repairs in (catalog.get("repairs") or {}).items():
        counts = ", ".join(f"{count} {kind}" for kind, count in repairs.items())
        lines.append(
            f"repaired:  {server}: {counts} (items repaired or left out so clients can read them; see the log)"
        )
    lines += ["", f"{'SERVER':<20}{'INSTANCE':<20}{'STATE':<14}{'BREAKER':<11}{'ERAS':<24}ADDRESS"]
    for instance in document.get("instances", []):
        lines.append(
            f"{instance['server']:<20}{instance['instance']:<20}{instance['state']:<14}"
            f"{instance.get('breaker') or '-':<11}{_eras(instance.get('eras') or {}):<24}{instance['address']}"
            + (f"  ({instance['error']})" if instance.get("error") else "")
            + (f"  (lists refused: {', '.join(instance['refused'])})" if instance.get("refused") else "")
        )
    known = {"catalog", "instances", "health", "sessions", "policy", "budgets"}
    for name, section in document.items():
        if name not in known:
            lines += ["", f"{name}:", json.dumps(section, indent=2)]
    return "\n".join(lines)


def _budget(budget: dict[str, Any]) -> str:
    """`research-daily (group research): 4000 of 5000 calls per day, resets 2026-12-03T00:00:00Z`."""
    unit = "calls" if budget.get("unit") == "calls" else "cost units"
    spent = f"{budget.get('spent', 0):g} of {budget.get('limit', 0):g} {unit} per {budget.get('period')}"
    if budget.get("subject") == "each agent":
        spent = f"at most {spent} (the busiest of {budget.get('agents_counted', 0)} agents)"
    return f"{budget.get('name')} ({budget.get('subject')}): {spent}, resets {budget.get('resets_at')}"


def _eras(eras: dict[str, Any]) -> str:
    """The versions an instance speaks; `*` marks the one its lists come from (bridged if alone)."""
    speaks = [
        f"{version}*" if version == eras.get("lists") else version for version in eras.get("speaks", [])
    ]
    return "+".join(speaks) or "-"
