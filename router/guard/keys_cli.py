"""`toolmesh keys create|list|revoke`: manage the API keys file the router reads.

The key itself is printed once, at creation; the file keeps only its SHA-256. The router
re-reads the file within a second of a change, so a revoked key stops working without a restart.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from router.errors import ConfigError
from router.guard.identity import KeyStore

KEYS_FILE_ENV = "TOOLMESH_AUTH_KEYS_FILE"


def add_keys_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke agent API keys")
    keys.add_argument("--file", type=Path, help=f"keys file (default: ${KEYS_FILE_ENV})")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key for an agent; prints the key once")
    create.add_argument("--agent", required=True, help="agent id the key authenticates as")
    create.add_argument("--group", action="append", default=[], help="a group of the agent (repeatable)")
    actions.add_parser("list", help="list keys (ids, agents, groups; never the keys)")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", help="the id shown by `toolmesh keys list`")


def run_keys(args: dict[str, Any]) -> int:
    path = args.get("file") or (Path(os.environ[KEYS_FILE_ENV]) if KEYS_FILE_ENV in os.environ else None)
    if path is None:
        print(f"toolmesh: keys: no keys file (pass --file or set {KEYS_FILE_ENV})", file=sys.stderr)
        return 2
    store = KeyStore(path)
    try:
        if args["action"] == "create":
            for option, value in [
                ("--agent", args["agent"]),
                *(("--group", group) for group in args["group"]),
            ]:
                if not value.strip() or value != value.strip() or not value.isprintable():
                    print(
                        f"toolmesh: keys: {option} {value!r} is not a name: give one without spaces "
                        "around it or control characters, e.g. --agent ci-bot",
                        file=sys.stderr,
                    )
                    return 2
            entry, key = store.create(args["agent"], args["group"])
            print(key)
            groups = ",".join(entry.groups) or "-"
            print(
                f"created key {entry.id} for agent {entry.agent} (groups: {groups}); it is shown only once",
                file=sys.stderr,
            )
        elif args["action"] == "list":
            entries = store.entries()  # read first: a file that cannot be read prints no table
            print(f"{'ID':<14}{'AGENT':<24}{'GROUPS':<24}{'CREATED':<27}REVOKED")
            for entry in entries:
                groups = ",".join(entry.groups) or "-"
                print(f"{entry.id:<14}{entry.agent:<24}{groups:<24}{entry.created:<27}{entry.revoked or '-'}")
        else:
            entry = store.revoke(args["key_id"])
            print(f"revoked key {entry.id} of agent {entry.agent}")
    except ConfigError as exc:
        print(f"toolmesh: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a directory, no permission, a missing parent directory
        print(
            f"toolmesh: keys: cannot use {path} as the keys file: {exc.strerror} (pass --file FILE)",
            file=sys.stderr,
        )
        return 2
    return 0
