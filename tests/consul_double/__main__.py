"""Run the Consul double: ``python -m tests.consul_double --host 127.0.0.1 --port 8500``.

``--port 0`` binds a free port; the chosen address is printed on stdout as
``consul-double listening on http://HOST:PORT`` either way, once the socket is bound.
SIGTERM/SIGINT stop it within about a second even with blocking queries in flight.
"""

from __future__ import annotations

import argparse
import socket
import sys
from types import FrameType

import uvicorn

from .app import ConsulDouble
from .state import DoubleConfig


class _Server(uvicorn.Server):
    """uvicorn's server, telling the double to release blocking queries on SIGTERM/SIGINT
    (otherwise each would be cancelled with a traceback after the graceful timeout)."""

    def __init__(self, config: uvicorn.Config, double: ConsulDouble) -> None:
        super().__init__(config)
        self._double = double

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._double.request_shutdown()
        super().handle_exit(sig, frame)


def _parser() -> argparse.ArgumentParser:
    defaults = DoubleConfig()
    parser = argparse.ArgumentParser(prog="python -m tests.consul_double", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument(
        "--reap-interval",
        type=float,
        default=defaults.reap_interval,
        help="seconds between reaper passes (Consul: 30)",
    )
    parser.add_argument(
        "--min-deregister-after",
        type=float,
        default=defaults.min_deregister_after,
        help="lower clamp for DeregisterCriticalServiceAfter, in seconds (Consul: 60)",
    )
    parser.add_argument(
        "--check-update-interval",
        type=float,
        default=defaults.check_update_interval,
        help="output-only check changes reach the catalog after d/2..3d/2 seconds; 0 syncs at once "
        "(Consul's check_update_interval: 300)",
    )
    parser.add_argument("--datacenter", default=defaults.datacenter)
    parser.add_argument("--node-name", default=defaults.node_name)
    parser.add_argument(
        "--lenient-kv-keys",
        action="store_true",
        help="accept any KV key not starting with '/' (older Consul) instead of recent Consul's "
        "character and suffix restrictions",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, bind the socket, serve until signalled."""
    args = _parser().parse_args(argv)
    config = DoubleConfig(
        datacenter=args.datacenter,
        node_name=args.node_name,
        node_address=args.host if args.host not in ("0.0.0.0", "::") else "127.0.0.1",
        reap_interval=args.reap_interval,
        min_deregister_after=args.min_deregister_after,
        check_update_interval=args.check_update_interval,
        strict_kv_keys=not args.lenient_kv_keys,
    )
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    print(f"consul-double listening on http://{host}:{port}", flush=True)
    double = ConsulDouble(config)
    server = _Server(
        uvicorn.Config(
            double.asgi(),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        ),
        double,
    )
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
