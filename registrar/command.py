"""`toolmesh registrar`: its command-line options and how it starts.

`router/cli.py` names `add_parser` and `run` in its command table as strings, imported only when
needed: the registrar is built from the router's parts, never the other way round.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from router.cli import load_settings
from router.errors import ConfigError
from router.settings import SETTINGS_FILE_ENV, RegistrarSettings


def add_parser(commands: Any) -> None:
    """`toolmesh registrar`'s options (the router's CLI adds this by name)."""
    registrar = commands.add_parser(
        "registrar",
        help="register an MCP server into Consul or etcd and keep it healthy",
        usage="toolmesh registrar --name NAME (--url URL | [--port P] -- COMMAND ARGS...) "
        "(--consul URL | --etcd URL) [options]",
        argument_default=argparse.SUPPRESS,
    )
    add = registrar.add_argument
    add("--name", help="server name (its tools appear under it)")
    add("--url", help="Streamable HTTP endpoint of a running server, e.g. http://127.0.0.1:3000/mcp")
    add(
        "--transport",
        choices=["http", "sse"],
        help="what --url speaks: http (Streamable HTTP, default) or sse (2024-11-05 HTTP+SSE; --url is its event stream)",
    )
    add("--host", help="address the stdio bridge listens on (default 127.0.0.1)")
    add("--port", type=int, help="port of the stdio bridge (default: a free one)")
    add("--advertise", help="host routers use to reach the bridge")
    add("--consul", help="Consul agent URL, e.g. http://127.0.0.1:8500")
    add("--etcd", help="etcd URL, e.g. http://127.0.0.1:2379")
    add("--service", dest="consul_service", help="Consul service name (default mcp)")
    add("--etcd-prefix", dest="etcd_prefix", help="etcd key prefix (default /toolmesh/)")
    add("--instance-id", dest="instance_id", help="unique id among instances of this name (default random)")
    add("--tag", dest="tags", action="append", help="label registered with the instance (repeatable)")
    add("--ttl", type=float, help="seconds the health check lives without a heartbeat (default 10)")
    add(
        "--deregister-after",
        dest="deregister_after",
        type=float,
        help="Consul DeregisterCriticalServiceAfter",
    )
    add("--probe-interval", dest="probe_interval", type=float, help="seconds between re-probes (default 60)")
    add("--probe-timeout", dest="probe_timeout", type=float, help="seconds per probe step (default 5)")
    add("--quarantine", action="store_true", help="withhold changed definitions until approved")
    add("--metrics-port", dest="metrics_port", type=int, help="serve Prometheus metrics on this port")
    add("--log-level", dest="log_level", help="debug, info, warning or error")
    add("--log-format", dest="log_format", help="json or text")
    add("--settings", type=Path, help=f"TOML settings file (or {SETTINGS_FILE_ENV})")


def run(overrides: dict[str, Any]) -> int:
    """`toolmesh registrar`: register the server and keep it healthy until SIGTERM/SIGINT."""
    import anyio

    from router.observe.logging import configure

    try:
        settings = load_settings(overrides, RegistrarSettings)
    except ConfigError as exc:
        print(f"toolmesh registrar: {exc}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_format)
    from registrar.sidecar import Sidecar, make_registry

    sidecar = Sidecar(settings, make_registry(settings))
    try:
        anyio.run(sidecar.run, backend_options={"use_uvloop": sys.platform != "win32"})
    except OSError as exc:  # e.g. the bridge port is taken
        print(f"toolmesh registrar: {exc}", file=sys.stderr)
        return 1
    return 0
