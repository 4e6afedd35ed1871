"""uvicorn's HTTP protocol with one change: a response's head and body leave in one write.

uvicorn writes the status line and headers when the app sends `http.response.start`, and the
body on `http.response.body`: two `send` syscalls and two TCP segments for every JSON reply. On
loopback each syscall runs the receiver's TCP input path too, so for a small `tools/call` reply
the second write is a measurable share of the router's whole cost. Here writes are held until
the response is complete, or until the end of the current loop turn for a stream's events, and
go out in one write. A complete response leaves before the app's bookkeeping after it (metrics,
audit) and before uvicorn's, so none of that sits between the backend's answer and the client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps a transport; `write`s are buffered until the current loop turn ends."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes | bytearray | memoryview] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def flush(self) -> None:
        self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(wrapped)  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]  # the whole response: out it goes
        super().on_response_complete()
