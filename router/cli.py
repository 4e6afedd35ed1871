"""The `toolmesh` command: parse the command line, build settings, hand off.

Every option of `toolmesh router` maps to a field of RouterSettings and may also come from a
`TOOLMESH_*` variable or the settings file; the command line wins. Errors are printed as one line
naming the setting (or catalog field) and the fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from router import __version__
from router.errors import ConfigError
from router.settings import SETTINGS_FILE_ENV, RegistrarSettings, RouterSettings

S = TypeVar("S", RouterSettings, RegistrarSettings)

COMMANDS: dict[str, tuple[str, str]] = {
    "router": ("router.cli:add_router_parser", "router.cli:run_router"),
    "keys": ("router.guard.keys_cli:add_keys_parser", "router.guard.keys_cli:run_keys"),
    "status": ("router.observe.status:add_status_parser", "router.observe.status:run_status"),
    "up": ("router.up.command:add_parser", "router.up.command:main"),
    "registrar": ("registrar.command:add_parser", "registrar.command:run"),
    "approve": ("router.cli:add_approve_parser", "router.cli:run_approve"),
    "audit": ("router.observe.audit_cli:add_audit_parser", "router.observe.audit_cli:run_audit"),
    "usage": ("router.observe.usage_cli:add_usage_parser", "router.observe.usage_cli:run_usage"),
    "capabilities": (
        "router.observe.suggest:add_capabilities_parser",
        "router.observe.suggest:run_capabilities",
    ),
}
"""Each subcommand: ("module:function" that adds its parser, "module:function" that runs it with
the parsed options and returns the exit status). Modules are imported by name when needed, so
the router never imports the registrar (the registrar imports the router's parts)."""

CHILD_COMMANDS = {"registrar"}
"""Subcommands that take a command after `--` (the stdio server a registrar bridges)."""


def load(target: str) -> Callable[..., Any]:
    """The attribute a "module:attr" string names (uvicorn's `import_from_string`, in short)."""
    module, _, attr = target.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    child: list[str] = []
    if "--" in argv:  # `toolmesh registrar ... -- COMMAND ARGS...`: the rest is the stdio server
        cut = argv.index("--")
        argv, child = argv[:cut], argv[cut + 1 :]
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    if command is None:
        parser.print_help()
        sys.exit(2)
    if child:
        if command not in CHILD_COMMANDS:
            parser.error(f"a command after `--` is only for `toolmesh {' / '.join(sorted(CHILD_COMMANDS))}`")
        args["command"] = child
    sys.exit(load(COMMANDS[command][1])(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolmesh", description="A router for the Model Context Protocol.")
    parser.add_argument("--version", action="version", version=f"toolmesh {__version__}")
    commands = parser.add_subparsers(dest="command")
    for add_parser, _ in COMMANDS.values():
        load(add_parser)(commands)
    return parser


def add_router_parser(commands: Any) -> None:
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


def add_approve_parser(commands: Any) -> None:
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


def load_settings(overrides: dict[str, Any], model: type[S] = RouterSettings) -> S:  # type: ignore[assignment]
    """Settings from overrides + environment + file; ConfigError names the bad field."""
    settings_file = overrides.pop("settings", None)
    if settings_file is not None:
        os.environ[SETTINGS_FILE_ENV] = str(settings_file)
    if os.environ.get(SETTINGS_FILE_ENV):
        check_settings_file(Path(os.environ[SETTINGS_FILE_ENV]))
    try:
        return model(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        if not field:  # a rule across fields: its message says which options to give
            raise ConfigError("options", first["msg"].removeprefix("Value error, "), "") from None
        env = f"TOOLMESH_{field.upper()}"
        # Where the value came from: an option (only then is there a flag to name), else the
        # environment or the settings file.
        file = os.environ.get(SETTINGS_FILE_ENV) or "the settings file"
        where = f"--{field.replace('_', '-')}" if field in overrides else f"{env} or `{field}` in {file}"
        raise ConfigError(f"setting '{field}'", first["msg"], f"check {where}") from None


def check_settings_file(path: Path) -> None:
    """A settings file that is missing, unreadable, not UTF-8 or not TOML stops the command
    with a line naming the file and the problem (pydantic-settings would skip a missing file,
    and a broken one ends in a traceback)."""
    fix = f"pass --settings FILE or set {SETTINGS_FILE_ENV} to a TOML file"
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"settings file {path}", "does not exist", fix) from None
    except OSError as exc:
        raise ConfigError(f"settings file {path}", f"cannot be read: {exc.strerror}", fix) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"settings file {path}", f"is not UTF-8 text (byte {exc.start})", "save it as UTF-8"
        ) from None
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"settings file {path}", f"is not valid TOML: {exc}", "fix the line it names"
        ) from None


def run_router(overrides: dict[str, Any]) -> int:
    import uvicorn

    from router.announce import AnnouncingServer
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
    try:
        router = Router(settings)  # an optional feature whose extra or files are missing stops here
    except ConfigError as exc:
        print(f"toolmesh: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        router,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=HttpProtocol.configured(settings.read_timeout, router.metrics.connections_refused.inc),
        limit_concurrency=settings.max_connections,
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
        timeout_graceful_shutdown=3,
    )
    AnnouncingServer(config).run()
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
