"""`toolmesh capabilities suggest --router URL`: tools on different servers that look alike.

Reads the tools the given credentials may see (`GET /v1/tools`) and prints groups of look-alike
tools (`catalog/capabilities.py` `suggest`: the same name after the server prefix, or names and
descriptions sharing most of their words), each with a `capabilities` entry to start from.
Suggestions only: nothing is applied; an operator copies what fits into the policy document.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from router.catalog.capabilities import suggest
from router.observe.router_client import TOKEN_ENV, RouterRequestFailed, get_json


def add_capabilities_parser(commands: Any) -> None:
    capabilities = commands.add_parser(
        "capabilities", help="work with capabilities (tools several servers provide)"
    )
    actions = capabilities.add_subparsers(dest="action", required=True)
    suggest_parser = actions.add_parser(
        "suggest", help="list look-alike tools across servers (suggestions only)"
    )
    suggest_parser.add_argument(
        "--router", required=True, help="the router's base URL, e.g. http://127.0.0.1:8080"
    )
    suggest_parser.add_argument("--token", help=f"an API key or token (default: ${TOKEN_ENV})")
    suggest_parser.add_argument("--separator", default="__", help="the router's server/tool separator")
    suggest_parser.add_argument(
        "--threshold", type=float, default=0.5, help="word overlap that counts as alike (0-1)"
    )
    suggest_parser.add_argument("--json", action="store_true", help="print the groups as JSON")


def run_capabilities(args: dict[str, Any]) -> int:
    try:
        document = get_json(args["router"], "/v1/tools", args.get("token"))
        tools = document["tools"]
    except RouterRequestFailed as exc:
        print(f"toolmesh: capabilities: {exc}", file=sys.stderr)
        return 1
    except (KeyError, TypeError):
        print(f"toolmesh: capabilities: {args['router']}/v1/tools holds no tool list", file=sys.stderr)
        return 1
    groups = suggest(tools, args["separator"], args["threshold"])
    if args.get("json"):
        print(json.dumps(groups, indent=2))
        return 0
    if not groups:
        print("no look-alike tools on different servers")
        return 0
    print("Look-alike tools on different servers (suggestions only; nothing is applied):")
    for group in groups:
        entry = {"providers": [{"tool": tool} for tool in group["providers"]]}
        print(f"\n  {group['capability']}: {', '.join(group['providers'])}")
        print(f'    "capabilities": {{"{group["capability"]}": {json.dumps(entry)}}}')
    return 0
