"""`toolmesh usage --router URL`: a running router's `GET /v1/usage`, as a table or CSV."""

from __future__ import annotations

import csv
import io
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from router.observe.router_client import TOKEN_ENV, RouterRequestFailed, get_json
from router.observe.usage import TOTAL_FIELDS


def add_usage_parser(commands: Any) -> None:
    usage = commands.add_parser("usage", help="show usage totals per agent, server and tool")
    usage.add_argument("--router", required=True, help="the router's base URL, e.g. http://127.0.0.1:8080")
    usage.add_argument("--token", help=f"an API key or token (default: ${TOKEN_ENV}); admins see every agent")
    usage.add_argument("--agent", help="only this agent (an admin's choice; others see only their own)")
    usage.add_argument("--from", dest="since", help="from this time (ISO 8601 UTC or epoch seconds)")
    usage.add_argument("--to", dest="until", help="up to this time, excluded")
    usage.add_argument(
        "--by", default="agent,server,tool", help="group by any of agent,group,namespace,server,tool"
    )
    usage.add_argument("--period", default="hour", choices=["minute", "hour", "day"])
    usage.add_argument("--csv", action="store_true", help="print CSV instead of a table")


def run_usage(args: dict[str, Any]) -> int:
    query = {"by": args["by"], "period": args["period"]}
    for key, name in (("agent", "agent"), ("since", "from"), ("until", "to")):
        if args.get(key):
            query[name] = args[key]
    try:
        document = get_json(args["router"], "/v1/usage?" + urllib.parse.urlencode(query), args.get("token"))
    except RouterRequestFailed as exc:
        print(f"toolmesh: usage: {exc}", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = document["rows"]
    columns = ["start", *[d.strip() for d in args["by"].split(",") if d.strip()], *TOTAL_FIELDS]
    if args.get("csv"):
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        print(out.getvalue(), end="")
        return 0
    table = [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in table)]) for i, column in enumerate(columns)]
    print("  ".join(column.upper().ljust(width) for column, width in zip(columns, widths, strict=True)))
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    if not rows:
        print("(no calls in this range)")
    return 0
