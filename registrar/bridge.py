"""Serve a stdio MCP server over Streamable HTTP, so every registered backend is on the network.

The bridge is the router itself with a one-server catalog and names passed through unchanged
(`prefix = never`): one upstream session to the child (a stdio server allows only one), shared by
any number of HTTP clients in either protocol era; progress and logs reach the request they
belong to, list_changed reaches every client, and the child is restarted if it dies and killed
with its process group when the bridge stops. Nothing here is bridge-specific code to maintain.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncGenerator, Generator

import anyio
import uvicorn

from router.app import Router
from router.catalog.record import BackendRecord, Catalog
from router.server.http11 import HttpProtocol
from router.settings import RouterSettings


class FixedSource:
    """A catalog that never changes."""

    name = "bridge"
    healthy = True

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def snapshots(self) -> AsyncGenerator[Catalog, None]:
        yield self.catalog
        await anyio.sleep_forever()


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the registrar owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Bridge:
    def __init__(
        self, server: str, command: list[str], *, host: str, port: int, advertise: str, log_level: str
    ) -> None:
        record = BackendRecord(
            server=server,
            instance_id=server,
            transport="stdio",
            command=command[0],
            args=tuple(command[1:]),
            timeout=None,
        )
        # Validated from a dict, not read from TOOLMESH_* (those are the registrar's own).
        settings = RouterSettings.model_validate(
            {
                "host": host,
                "port": port,
                "prefix": "never",
                "allowed_hosts": [advertise],
                "log_level": log_level,
                "reconnect_max": 5.0,
                # The bridge is a backend like any HTTP MCP server: routers on other hosts reach
                # it without credentials (protect it on the network, as the server itself).
                "auth_anonymous": "always",
            }
        )
        self.router = Router(settings, sources=[FixedSource(Catalog.of([record]))])
        self.key = record.key
        config = uvicorn.Config(
            self.router,
            host=host,
            port=port,
            loop="asyncio",
            http=HttpProtocol,
            lifespan="on",
            access_log=False,
            log_config=None,
            log_level=log_level,
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._host, self._port = host, port
        self._socket: socket.socket | None = None
        self._stopped = anyio.Event()

    @property
    def child_ready(self) -> bool:
        """True while the child process is connected and has answered."""
        backend = self.router.pool.backends.get(self.key)
        return backend is not None and backend.state == "ready"

    @property
    def child_server_info(self) -> dict[str, str]:
        backend = self.router.pool.backends.get(self.key)
        session = backend.session if backend is not None else None
        return {k: str(v) for k, v in (session.server_info if session else {}).items() if isinstance(v, str)}

    def bind(self) -> int:
        """Bind the listening socket now (so a busy port fails early and clearly); the port."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self._host}:{self._port}: {exc.strerror}") from None
        self._socket = sock
        return int(sock.getsockname()[1])

    async def run(self) -> None:
        """Serve on the bound socket until stop()."""
        assert self._socket is not None, "bind() first"
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            self._stopped.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: the router's shutdown stops the child; wait for it (bounded)."""
        self._server.should_exit = True
        with anyio.move_on_after(timeout):
            await self._stopped.wait()
