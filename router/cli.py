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
from typing import Any

from pydantic import ValidationError

from router import __version__
from router.errors import ConfigError
from router.settings import SETTINGS_FILE_ENV, RouterSettings


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    if command == "router":
        sys.exit(run_router(args))
    if command == "keys":
        from router.guard.keys_cli import run_keys

        sys.exit(run_keys(args))
    if command == "status":
        from router.observe.status import run_status

        sys.exit(run_status(args))
    if command == "up":
        from router.localcluster import run as run_up

        sys.exit(run_up(args["routers"], args["port"], args["dir"], not args["no_examples"], args["keep"]))
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
    router.add_argument("--settings", type=Path, help=f"TOML settings file (or {SETTINGS_FILE_ENV})")
    from router.guard.keys_cli import add_keys_parser
    from router.observe.status import add_status_parser

    add_keys_parser(commands)
    add_status_parser(commands)
    _add_up(commands)
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


def load_settings(overrides: dict[str, Any]) -> RouterSettings:
    """Settings from overrides + environment + file; ConfigError names the bad field."""
    settings_file = overrides.pop("settings", None)
    if settings_file is not None:
        os.environ[SETTINGS_FILE_ENV] = str(settings_file)
    try:
        return RouterSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        env = f"TOOLMESH_{field.upper()}"
        raise ConfigError(
            f"setting '{field}'", first["msg"], f"check --{field.replace('_', '-')} or {env}"
        ) from None


def run_router(overrides: dict[str, Any]) -> int:
    import uvicorn

    from router.app import Router
    from router.observe.logging import configure
    from router.server.transport import CoalescingHttpToolsProtocol

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
        http=CoalescingHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(config).run()
    return 0
