"""Streamable HTTP toward a backend, over one pooled aiohttp session per instance.

A request is a POST whose answer is either one JSON message or an SSE stream carrying related
messages and, last, the response. A stream that ends early (2025-11-25 polling) is resumed with
GET and `Last-Event-ID`. The optional GET stream brings what the backend sends on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import anyio
import orjson
from anyio.abc import TaskGroup

from router.errors import BackendUnavailable, BackendUnreachable, SessionExpired
from router.upstream.base import Message, MessageHandler
from router.upstream.sse import parse_events

log = logging.getLogger("toolmesh.upstream")

_POST_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
_GET_HEADERS = {"Accept": "text/event-stream"}
_CONNECTION_ERRORS = (aiohttp.ClientError, OSError)


class HttpChannel:
    def __init__(self, server: str, url: str, headers: Mapping[str, str], connect_timeout: float) -> None:
        self.server = server
        self.url = url
        self.static_headers = dict(headers)
        self.connect_timeout = connect_timeout
        self.on_unsolicited: MessageHandler | None = None
        self._session: aiohttp.ClientSession | None = None
        self.issued_session_id: str | None = None

    @property
    def alive(self) -> bool:
        return self._session is not None and not self._session.closed

    async def open(self, task_group: TaskGroup) -> None:
        if self.alive:
            return
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={**_POST_HEADERS, **self.static_headers},
            skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise BackendUnavailable(self.server, "connection closed")
        return self._session

    async def request(
        self, message: Message, headers: Mapping[str, str], on_message: MessageHandler | None = None
    ) -> Message:
        body = orjson.dumps(message)
        try:
            async with self._http().post(self.url, data=body, headers=headers) as response:
                return await self._read_reply(response, message["id"], headers, on_message)
        except _CONNECTION_ERRORS as exc:
            raise _translate(self.server, exc) from None

    async def notify(self, message: Message, headers: Mapping[str, str]) -> None:
        try:
            async with self._http().post(self.url, data=orjson.dumps(message), headers=headers) as response:
                if response.status == 404 and "mcp-session-id" in headers:
                    raise SessionExpired(self.server)
                await response.read()
        except _CONNECTION_ERRORS as exc:
            raise _translate(self.server, exc) from None

    async def end_session(self, headers: Mapping[str, str]) -> None:
        try:
            async with self._http().delete(self.url, headers=headers) as response:
                await response.read()
        except (*_CONNECTION_ERRORS, BackendUnavailable):
            pass

    async def listen(self, headers: Mapping[str, str]) -> None:
        """Hold the GET stream open and hand its messages to `on_unsolicited`; resume on drops."""
        last_event_id: str | None = None
        delay = 0.2
        while self.alive:
            request_headers = {**headers, **_GET_HEADERS}
            if last_event_id is not None:
                request_headers["Last-Event-ID"] = last_event_id
            try:
                async with self._http().get(self.url, headers=request_headers) as response:
                    if response.status == 404 and "mcp-session-id" in headers:
                        raise SessionExpired(self.server)
                    if response.status != 200 or response.content_type != "text/event-stream":
                        return  # the backend offers no GET stream; nothing to listen to
                    delay = 0.2
                    async for event in parse_events(response.content):
                        last_event_id = event.id or last_event_id
                        if event.data and self.on_unsolicited is not None:
                            await self.on_unsolicited(orjson.loads(event.data))
            except (*_CONNECTION_ERRORS, BackendUnavailable, orjson.JSONDecodeError) as exc:
                log.debug("backend GET stream dropped", extra={"server": self.server, "reason": str(exc)})
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _note_session(self, response: aiohttp.ClientResponse) -> None:
        """Remember a session id the backend issues (on its initialize response)."""
        session_id = response.headers.get("mcp-session-id")
        if session_id is not None:
            self.issued_session_id = session_id

    async def _read_reply(
        self,
        response: aiohttp.ClientResponse,
        request_id: Any,
        headers: Mapping[str, str],
        on_message: MessageHandler | None,
    ) -> Message:
        if response.status == 404 and "mcp-session-id" in headers:
            raise SessionExpired(self.server)
        if response.content_type == "text/event-stream":
            return await self._read_stream(response, request_id, headers, on_message)
        body = await response.read()
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BackendUnavailable(
                self.server, f"HTTP {response.status} with a body that is not JSON"
            ) from None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise BackendUnavailable(self.server, f"HTTP {response.status} without a JSON-RPC response")
        self._note_session(response)
        return reply

    async def _read_stream(
        self,
        response: aiohttp.ClientResponse,
        request_id: Any,
        headers: Mapping[str, str],
        on_message: MessageHandler | None,
    ) -> Message:
        last_event_id: str | None = None
        retry_ms = 0
        stream = response
        for _ in range(1000):  # resumptions of one request; bounded so a broken server cannot spin us
            async for event in parse_events(stream.content):
                last_event_id = event.id or last_event_id
                retry_ms = event.retry if event.retry is not None else retry_ms
                if not event.data:
                    continue
                message: Message = orjson.loads(event.data)
                if message.get("id") == request_id and ("result" in message or "error" in message):
                    self._note_session(response)
                    return message
                if on_message is not None:
                    await on_message(message)
                elif self.on_unsolicited is not None:
                    await self.on_unsolicited(message)
            if last_event_id is None:
                break
            await anyio.sleep(retry_ms / 1000)
            resume = {**headers, **_GET_HEADERS, "Last-Event-ID": last_event_id}
            if stream is not response:
                stream.release()
            stream = await self._http().get(self.url, headers=resume)
            if stream.status != 200:
                break
        raise BackendUnavailable(self.server, "the response stream ended before the response")


def _translate(server: str, exc: BaseException) -> BackendUnavailable:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return BackendUnreachable(server, f"cannot connect ({exc.os_error.strerror or exc.os_error})")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return BackendUnavailable(server, "the server closed the connection")
    return BackendUnavailable(server, f"{type(exc).__name__}: {exc}".rstrip(": "))
