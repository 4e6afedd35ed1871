"""The `toolmesh` command: parse the command line, build settings, hand off.

Every option of `toolmesh router` maps to a field of RouterSettings and may also come from a
`TOOLMESH_*` variable or the settings file; the command line wins. Errors are printed as one line
naming the setting (or catalog field) and the fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from router import __version__
from router.errors import ConfigError
from router.settings import SETTINGS_FILE_ENV, RegistrarSettings, RouterSettings

S = TypeVar("S", RouterSettings, RegistrarSettings)


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    child: list[str] = []
    if "--" in argv:  # `toolmesh registrar ... -- COMMAND ARGS...`: the rest is the stdio server
        cut = argv.index("--")
        argv, child = argv[:cut], argv[cut + 1 :]
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    if child and command != "registrar":
        parser.error("a command after `--` is only for `toolmesh registrar`")
    if command == "router":
        sys.exit(run_router(args))
    if command == "keys":
        from router.guard.keys_cli import run_keys

        sys.exit(run_keys(args))
    if command == "status":
        from router.observe.status import run_status

        sys.exit(run_status(args))
    if command == "up":
        from router.up.command import run as run_up

        sys.exit(run_up(args["routers"], args["port"], args["dir"], not args["no_examples"], args["keep"]))
    if command == "registrar":
        if child:
            args["command"] = child
        sys.exit(run_registrar(args))
    if command == "approve":
        sys.exit(run_approve(args))
    parser.print_help()
    sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolmesh", description="A router for the Model Context Protocol.")
    parser.add_argument("--version", action="version", version=f"toolmesh {__version__}")
    commands = parser.add_subparsers(dest="command")
    router = commands.add_parser(
        "router",
        help="serve one MCP endpoint over the servers in the catalog",
        argument_default=argparse.SUPPRESS,
    )
    router.add_argument("--config", type=Path, help="catalog file (mcpServers JSON)")
    router.add_argument("--host", help="listen address (default 127.0.0.1)")
    router.add_argument("--port", type=int, help="listen port (default 8080)")
    router.add_argument(
        "--prefix", choices=["always", "never"], help="prefix tool names with the server name"
    )
    router.add_argument("--separator", help="between server and tool name (default __)")
    router.add_argument("--page-size", dest="page_size", type=int, help="items per list page (0: one page)")
    router.add_argument(
        "--request-timeout", dest="request_timeout", type=float, help="seconds per backend request"
    )
    router.add_argument("--max-body-bytes", dest="max_body_bytes", type=int, help="largest request body")
    router.add_argument("--log-level", dest="log_level", help="debug, info, warning or error")
    router.add_argument("--log-format", dest="log_format", help="json or text")
    router.add_argument("--nats", help="NATS URL: share state with other replicas (needs a cluster key)")
    router.add_argument("--consul", help="discover servers from this Consul agent (http://HOST:8500)")
    router.add_argument("--etcd", help="discover servers from this etcd (http://HOST:2379)")
    router.add_argument("--settings", type=Path, help=f"TOML settings file (or {SETTINGS_FILE_ENV})")
    from router.guard.keys_cli import add_keys_parser
    from router.observe.status import add_status_parser

    add_keys_parser(commands)
    add_status_parser(commands)
    _add_up(commands)
    _registrar_parser(commands)
    approve = commands.add_parser(
        "approve",
        help="approve a server's changed (quarantined) definitions",
        argument_default=argparse.SUPPRESS,
    )
    approve.add_argument("name", help="server name")
    approve.add_argument("hash", help="the definitions hash to approve (pending_hash of the record)")
    approve.add_argument("--consul", help="Consul agent URL")
    approve.add_argument("--etcd", help="etcd URL")
    approve.add_argument("--etcd-prefix", dest="etcd_prefix", help="etcd key prefix (default /toolmesh/)")
    return parser


def _add_up(commands: Any) -> None:
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


def _registrar_parser(commands: Any) -> None:
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


def load_settings(overrides: dict[str, Any], model: type[S] = RouterSettings) -> S:  # type: ignore[assignment]
    """Settings from overrides + environment + file; ConfigError names the bad field."""
    settings_file = overrides.pop("settings", None)
    if settings_file is not None:
        os.environ[SETTINGS_FILE_ENV] = str(settings_file)
    try:
        return model(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        if not field:  # a rule across fields: its message says which options to give
            raise ConfigError("options", first["msg"].removeprefix("Value error, "), "") from None
        env = f"TOOLMESH_{field.upper()}"
        raise ConfigError(
            f"setting '{field}'", first["msg"], f"check --{field.replace('_', '-')} or {env}"
        ) from None


def run_router(overrides: dict[str, Any]) -> int:
    import uvicorn

    from router.app import Router
    from router.observe.logging import configure
    from router.server.http11 import HttpProtocol

    try:
        settings = load_settings(overrides)
        if settings.config is not None:
            from router.catalog.config_file import load_catalog_file

            load_catalog_file(settings.config)  # a bad catalog stops us here, with the reason
    except ConfigError as exc:
        print(f"toolmesh: {exc}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_format)
    router = Router(settings)
    config = uvicorn.Config(
        router,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=HttpProtocol,
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(config).run()
    return 0


def run_registrar(overrides: dict[str, Any]) -> int:
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


def run_approve(args: dict[str, Any]) -> int:
    """Write an approval for a server's definitions hash into the registry."""
    import anyio

    from router.catalog.sources.registry import Registry, RegistryUnavailable
    from router.settings import check_registry_url

    consul, etcd = args.get("consul"), args.get("etcd")
    try:
        if (consul is None) == (etcd is None):
            raise ConfigError("options", "give exactly one registry: --consul URL or --etcd URL")
        check_registry_url(consul or etcd)
    except (ConfigError, ValueError) as exc:
        print(f"toolmesh approve: {exc}", file=sys.stderr)
        return 2
    registry: Registry
    if consul:
        from router.catalog.sources.consul import ConsulRegistry

        registry = ConsulRegistry(consul)
    else:
        from router.catalog.record import DEFAULT_ETCD_PREFIX
        from router.catalog.sources.etcd import EtcdRegistry

        registry = EtcdRegistry(str(etcd), prefix=args.get("etcd_prefix", DEFAULT_ETCD_PREFIX))

    async def approve() -> None:
        async with registry:
            await registry.approve(args["name"], args["hash"])

    try:
        anyio.run(approve)
    except RegistryUnavailable as exc:
        print(f"toolmesh approve: {exc}", file=sys.stderr)
        return 1
    print(f"approved {args['hash']} for server '{args['name']}'")
    return 0
