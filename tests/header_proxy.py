"""A recording HTTP proxy for tests: forwards everything to one backend, remembers request headers.

It runs its own event loop in a thread, so it keeps serving while the test blocks (e.g. while
`run_router` waits for readiness). Responses are streamed, so SSE replies pass through intact.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

from router.up.processes import free_port

HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@contextmanager
def header_proxy(target: str) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Yield (proxy URL, list of the request headers seen, lower-cased)."""
    seen: list[dict[str, str]] = []
    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {key.lower(): value for key, value in request.headers.items()}
        seen.append(headers)
        body = await request.read()
        outgoing = {key: value for key, value in headers.items() if key not in HOP_BY_HOP}
        session: aiohttp.ClientSession = request.app[HTTP]
        async with session.request(request.method, target, data=body, headers=outgoing) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-encoding":
                    response.headers[key] = value
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def main(stop: asyncio.Event) -> None:
        app = web.Application()
        app[HTTP] = aiohttp.ClientSession(auto_decompress=False)
        app.router.add_route("*", "/{tail:.*}", forward)
        # Long-lived streams (a router's GET or subscriptions/listen stream) must not hold the
        # shutdown for aiohttp's default minute.
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await stop.wait()
        await app[HTTP].close()
        await runner.cleanup()

    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(stop),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}/mcp", seen
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
