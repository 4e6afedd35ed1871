"""Streamable HTTP toward a backend, over pooled keep-alive connections per instance.

A request is a POST whose answer is either one JSON message or an SSE stream carrying related
messages and, last, the response. A stream that ends early (2025-11-25 polling) is resumed with
GET and `Last-Event-ID`. The optional GET stream brings what the backend sends on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup

from router.errors import BackendUnavailable, BackendUnreachable, SessionExpired
from router.nesting import to_json
from router.upstream.base import STREAM_PAUSED, Message, MessageHandler
from router.upstream.sse import parse_events
from router.upstream.wire import ConnectFailed, ConnectionClosed, Response, WireClient

log = logging.getLogger("toolmesh.upstream")

_POST_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
_GET_HEADERS = {"Accept": "text/event-stream"}
_CONNECTION_ERRORS = (OSError, ValueError)


class HttpChannel:
    # Closing a request's response stream cancels it (the 2026-07-28 rule; we close on cancel).
    stream_close_cancels = True
    # Per-request headers (traceparent among them) reach the backend; a stdio child sees none.
    carries_headers = True

    def __init__(
        self,
        server: str,
        url: str,
        headers: Mapping[str, str],
        connect_timeout: float,
        identity: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.identity = identity
        self.server = server
        self.url = url
        self.static_headers = dict(headers)
        self.connect_timeout = connect_timeout
        self.on_unsolicited: MessageHandler | None = None
        self._client: WireClient | None = None
        self.issued_session_id: str | None = None

    @property
    def alive(self) -> bool:
        return self._client is not None

    async def open(self, task_group: TaskGroup) -> None:
        if self.alive:
            return
        self._client = WireClient(self.url, {**_POST_HEADERS, **self.static_headers}, self.connect_timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _signed(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """With `identity` (the backend opted in): the router's own token on a request that does
        not carry one made for an agent's call (guard/backend_tokens.py)."""
        return headers if self.identity is None else {**self.identity(), **headers}

    def _http(self) -> WireClient:
        if self._client is None:
            raise BackendUnavailable(self.server, "connection closed")
        return self._client

    async def request(
        self, message: Message, headers: Mapping[str, str], on_message: MessageHandler | None = None
    ) -> Message:
        body = to_json(message)
        try:
            async with self._http().request("POST", self._signed(headers), body) as response:
                return await self._read_reply(response, message["id"], headers, on_message)
        except _CONNECTION_ERRORS as exc:
            raise _translate(self.server, exc) from None

    async def notify(self, message: Message, headers: Mapping[str, str]) -> None:
        try:
            async with self._http().request("POST", self._signed(headers), to_json(message)) as response:
                if response.status == 404 and "mcp-session-id" in headers:
                    raise SessionExpired(self.server)
                await response.read()
        except _CONNECTION_ERRORS as exc:
            raise _translate(self.server, exc) from None

    async def end_session(self, headers: Mapping[str, str]) -> None:
        try:
            async with self._http().request("DELETE", self._signed(headers)) as response:
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
                async with self._http().request("GET", self._signed(request_headers)) as response:
                    if response.status == 404 and "mcp-session-id" in headers:
                        raise SessionExpired(self.server)
                    if response.status != 200 or response.content_type != "text/event-stream":
                        return  # the backend offers no GET stream; nothing to listen to
                    delay = 0.2
                    async for event in parse_events(response.lines()):
                        last_event_id = event.id or last_event_id
                        if event.data and self.on_unsolicited is not None:
                            await self.on_unsolicited(orjson.loads(event.data))
            except (*_CONNECTION_ERRORS, BackendUnavailable, orjson.JSONDecodeError) as exc:
                log.debug("backend GET stream dropped", extra={"server": self.server, "reason": str(exc)})
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _note_session(self, response: Response) -> None:
        """Remember a session id the backend issues (on its initialize response)."""
        session_id = response.headers.get("mcp-session-id")
        if session_id is not None:
            self.issued_session_id = session_id

    async def _read_reply(
        self,
        response: Response,
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
        if reply.get("id") != request_id:  # not ours: never hand a client another request's answer
            raise BackendUnavailable(
                self.server, "it answered with the response to another request (wrong id)"
            )
        self._note_session(response)
        return reply

    async def _read_stream(
        self,
        response: Response,
        request_id: Any,
        headers: Mapping[str, str],
        on_message: MessageHandler | None,
    ) -> Message:
        cursor = _StreamCursor()
        reply = await self._scan(response, request_id, on_message, cursor)
        for _ in range(1000):  # resumptions of one request; bounded so a broken server cannot spin us
            if reply is not None:
                self._note_session(response)
                return reply
            if cursor.last_event_id is None:
                break
            if on_message is not None:
                await on_message({"method": STREAM_PAUSED, "params": {"retry": cursor.retry_ms}})
            await anyio.sleep(cursor.retry_ms / 1000)
            resume = {**headers, **_GET_HEADERS, "Last-Event-ID": cursor.last_event_id}
            async with self._http().request("GET", self._signed(resume)) as stream:
                if stream.status != 200:
                    break
                reply = await self._scan(stream, request_id, on_message, cursor)
        raise BackendUnavailable(self.server, "the response stream ended before the response")

    async def _scan(
        self, stream: Response, request_id: Any, on_message: MessageHandler | None, cursor: _StreamCursor
    ) -> Message | None:
        """Hand on what precedes the response on `stream`; the response, or None if the stream ended."""
        async for event in parse_events(stream.lines()):
            cursor.last_event_id = event.id or cursor.last_event_id
            cursor.retry_ms = event.retry if event.retry is not None else cursor.retry_ms
            if not event.data:
                continue
            try:
                message: Message = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise BackendUnavailable(
                    self.server, "its response stream carried an event that is not JSON"
                ) from None
            if not isinstance(message, dict):
                raise BackendUnavailable(
                    self.server, "its response stream carried an event that is not a message"
                )
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return message
            if on_message is not None:
                await on_message(message)
            elif self.on_unsolicited is not None:
                await self.on_unsolicited(message)
        return None


@dataclass(slots=True)
class _StreamCursor:
    """Where a response stream got to, for resuming it with `Last-Event-ID`."""

    last_event_id: str | None = None
    retry_ms: int = 0


def _translate(server: str, exc: BaseException) -> BackendUnavailable:
    if isinstance(exc, ConnectFailed):
        return BackendUnreachable(server, f"cannot connect ({exc})")
    if isinstance(exc, ConnectionClosed):
        return BackendUnavailable(server, str(exc))
    return BackendUnavailable(server, f"{type(exc).__name__}: {exc}".rstrip(": "))
