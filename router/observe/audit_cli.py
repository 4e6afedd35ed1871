"""`toolmesh audit`: check an audit file's hash chain, and export its records for a SIEM.

toolmesh audit verify FILE [--head HASH]   exit 0 if the chain holds, 1 naming the first
                                           broken line and why
toolmesh audit export FILE [--out PATH]    the records as JSON lines (chain fields dropped
                                           unless --keep-chain), after verifying them
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from router.observe.audit_chain import records, verify


def add_audit_parser(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify or export a hash-chained audit file")
    actions = audit.add_subparsers(dest="action", required=True)
    check = actions.add_parser("verify", help="check the hash chain; name the first broken record")
    check.add_argument("file", type=Path)
    check.add_argument(
        "--head", help="the hash the chain must end at (from the router's 'audit chain head' log)"
    )
    export = actions.add_parser("export", help="verify, then write the records as JSON lines")
    export.add_argument("file", type=Path)
    export.add_argument("--out", type=Path, help="where to write (default: standard output)")
    export.add_argument("--keep-chain", action="store_true", help="keep the prev/hash fields")


def run_audit(args: dict[str, Any]) -> int:
    path: Path = args["file"]
    try:
        with path.open("rb") as file:
            verdict = verify(file, args.get("head"))
    except OSError as exc:
        print(f"toolmesh audit: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    if not verdict.ok:
        print(f"{path}:{verdict.line}: {verdict.problem}", file=sys.stderr)
        print(
            f"{verdict.records} records before it verified; chain head there {verdict.head}", file=sys.stderr
        )
        return 1
    if args["action"] == "verify":
        print(f"{path}: {verdict.records} records, chain intact, head {verdict.head}")
        return 0
    out = args.get("out")
    with path.open("rb") as source:
        lines = source if args.get("keep_chain") else (line + b"\n" for line in records(source))
        if out is None:
            sys.stdout.buffer.writelines(lines)
            sys.stdout.buffer.flush()
        else:
            with out.open("wb") as target:
                target.writelines(lines)
    print(f"{path}: {verdict.records} verified records exported", file=sys.stderr)
    return 0
