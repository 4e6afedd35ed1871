"""The `toolmesh up` command: make the work directory, start the cluster, print where everything
is, wait for Ctrl-C or SIGTERM, stop everything and say whether anything was left running."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from router.up import ClusterError


def add_parser(commands: Any) -> None:
    """`toolmesh up`'s options."""
    up = commands.add_parser(
        "up",
        help="run a local cluster on loopback: NATS, etcd (standing in for Consul), N routers behind Envoy, "
        "the example servers with registrars; Ctrl-C stops it",
    )
    up.add_argument("--routers", type=int, default=3, help="router replicas (default 3)")
    up.add_argument(
        "--port", type=int, default=8080, help="port of the single address (default 8080; 0: any free)"
    )
    up.add_argument("--dir", type=Path, default=None, help="keep data and logs here (default: a temp dir)")
    up.add_argument("--keep", action="store_true", help="keep the temp dir with the logs after stopping")
    up.add_argument("--no-examples", dest="no_examples", action="store_true", help="start no example servers")


def main(args: dict[str, Any]) -> int:
    """`toolmesh up` with the parsed options."""
    return run(args["routers"], args["port"], args["dir"], not args["no_examples"], args["keep"])


def run(routers: int, port: int, workdir: Path | None, examples: bool, keep: bool) -> int:
    """The `toolmesh up` command: start, print the addresses, wait for Ctrl-C/SIGTERM, stop."""
    from router.up.cluster import LocalCluster
    from router.up.plan import Plan  # here, not above: `toolmesh --help` should not load it

    if routers < 1:
        print("toolmesh up: --routers must be at least 1", file=sys.stderr)
        return 2
    own_dir = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="toolmesh-up-")) if workdir is None else workdir
    try:
        cluster = LocalCluster(Plan.make(routers, port), directory, examples=examples)
    except ClusterError as exc:
        print(f"toolmesh up: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        cluster.stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        cluster.say(f"toolmesh up: starting in {directory} ...")
        cluster.start()
        cluster.say(cluster.banner())
        cluster.wait_until_stopped()
        cluster.say("toolmesh up: stopping ...")
    except ClusterError as exc:
        print(f"toolmesh up: {exc}", file=sys.stderr)
        status, keep = 1, True
    finally:
        survivors = cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if own_dir and not keep:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        cluster.say(f"toolmesh up: logs kept in {directory / 'logs'}")
    if survivors:
        print(f"toolmesh up: could not stop processes {survivors}", file=sys.stderr)
        return 1
    cluster.say("toolmesh up: stopped; nothing left running.")
    return status
