"""The one line `toolmesh router` prints once it is ready: where it listens.

    toolmesh listening on http://127.0.0.1:8080/mcp (console http://127.0.0.1:8080/console, metrics http://127.0.0.1:8080/metrics)

"Ready" is uvicorn's: the lifespan has started every service (the catalog is being followed)
and the socket is bound, so the address works the moment the line appears. The port is the
bound one, so `--port 0` prints the port the system chose. The line goes to stdout (logs go
to stderr), so a script can wait for it.
"""

from __future__ import annotations

import socket
import sys

import uvicorn


def listening_line(host: str, port: int) -> str:
    """The start-up line for a router bound to `host:port`."""
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    return f"toolmesh listening on {base}/mcp (console {base}/console, metrics {base}/metrics)"


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, printing `listening_line` once start-up has finished."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit:  # uvicorn could not bind; it logged the reason (address in use, ...)
            where = f"{self.config.host}:{self.config.port}"
            print(
                f"toolmesh: cannot listen on {where} (the reason is logged above); choose another "
                "--host or --port (TOOLMESH_HOST, TOOLMESH_PORT)",
                file=sys.stderr,
            )
            raise
        if not self.started:
            return
        bound = [sock for server in self.servers for sock in (server.sockets or ())]
        port = bound[0].getsockname()[1] if bound else self.config.port
        print(listening_line(self.config.host, port), flush=True, file=sys.stdout)
