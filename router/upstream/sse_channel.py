"""The 2024-11-05 HTTP+SSE transport toward a backend: one event stream, messages POSTed apart.

The router GETs the server's URL as `text/event-stream`; the first event, `endpoint`, names where
to POST messages (resolved against the stream's URL, and refused if it points at another
origin: the router's requests and headers must not be sent elsewhere). Every message the
server sends - responses, progress, logs, its own requests, `list_changed` - arrives on that one
stream, so `demux.py` matches responses by id and the rest to their call as over stdio (by
progress token, a related request id in `_meta`, or the only call that could be asked).

The stream is the session: when it ends, every request waiting on it fails as
BackendUnavailable, `ended` is set and the backend reconnects (a new stream, a new `initialize`)
with its usual backoff. A POST that could not connect never reached the server
(BackendUnreachable: the call may go to another instance). What this transport cannot give:
resuming a dropped stream (it has no event ids), a session per call's stream, or cancelling a
call by closing its stream (`notifications/cancelled` is sent instead, as for every legacy
backend).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import anyio
import orjson
from anyio.abc import TaskGroup, TaskStatus

from router.errors import BackendUnavailable, BackendUnreachable
from router.nesting import to_json
from router.upstream.base import Message, MessageHandler
from router.upstream.demux import Demux
from router.upstream.sse import parse_events
from router.upstream.wire import ConnectFailed, WireClient

log = logging.getLogger("toolmesh.upstream")

_CONNECTION_ERRORS = (OSError, ValueError)


class SseChannel:
    # Per-request headers (traceparent among them) go with each POST.
    carries_headers = True

    def __init__(self, server: str, url: str, headers: Mapping[str, str], connect_timeout: float) -> None:
        self.server = server
        self.url = url
        self.static_headers = dict(headers)
        self.connect_timeout = connect_timeout
        self.on_unsolicited: MessageHandler | None = None
        self.endpoint: str | None = None
        self.ended = anyio.Event()
        self.demux = Demux(server, self._post, "HTTP+SSE")
        self._stream: WireClient | None = None
        self._messages: WireClient | None = None
        self._reader = anyio.CancelScope()

    @property
    def alive(self) -> bool:
        return self._messages is not None and not self.ended.is_set()

    async def open(self, task_group: TaskGroup) -> None:
        """Open the event stream and wait (at most the connect timeout) for its `endpoint`."""
        if self.alive:
            return
        self._stream = WireClient(self.url, self.static_headers, self.connect_timeout)
        try:
            with anyio.fail_after(self.connect_timeout):
                endpoint: str = await task_group.start(self._read)
        except TimeoutError:
            await self.close()
            raise BackendUnavailable(
                self.server, f"no `endpoint` event on {self.url} within {self.connect_timeout:g} s"
            ) from None
        self.endpoint = endpoint
        self._messages = WireClient(
            endpoint, {"Content-Type": "application/json", **self.static_headers}, self.connect_timeout
        )
        log.debug("backend event stream open", extra={"server": self.server, "endpoint": endpoint})

    async def close(self) -> None:
        self._reader.cancel()
        stream, messages, self._stream, self._messages = self._stream, self._messages, None, None
        for client in (stream, messages):
            if client is not None:
                await client.close()
        self._end("the router closed the connection")

    async def request(
        self, message: Message, headers: Mapping[str, str], on_message: MessageHandler | None = None
    ) -> Message:
        return await self.demux.request(message, on_message, functools.partial(self._post, message, headers))

    async def notify(self, message: Message, headers: Mapping[str, str]) -> None:
        await self._post(message, headers)

    async def listen(self, headers: Mapping[str, str]) -> None:
        """What the server sends on its own arrives on the one stream with everything else:
        nothing to open, but this lasts as long as the stream (as a GET stream would)."""
        await self.ended.wait()

    async def end_session(self, headers: Mapping[str, str]) -> None:
        return  # the session ends with the stream, which close() closes

    async def _post(self, message: Message, headers: Mapping[str, str] | None = None) -> None:
        messages = self._messages
        if messages is None or self.ended.is_set():
            raise BackendUnreachable(self.server, "its event stream is closed")
        try:
            async with messages.request("POST", headers or {}, to_json(message)) as response:
                body = await response.read()
        except ConnectFailed as exc:
            raise BackendUnreachable(self.server, f"cannot connect ({exc})") from None
        except _CONNECTION_ERRORS as exc:
            raise BackendUnavailable(self.server, f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if not 200 <= response.status < 300:
            # The server refused the message (an unknown session: its stream is gone): nothing ran.
            reason = body.decode(errors="replace").strip()[:200]
            raise BackendUnreachable(
                self.server, f"the message endpoint answered HTTP {response.status} {reason}"
            )

    async def _read(self, *, task_status: TaskStatus[str]) -> None:
        """Read the event stream: the `endpoint` first (reported through `task_status`), then
        every message, until the stream ends or the channel is closed."""
        started = False
        reason = "the event stream ended"
        assert self._stream is not None
        with self._reader:
            try:
                async with self._stream.request("GET", {"Accept": "text/event-stream"}) as response:
                    if response.status != 200 or response.content_type != "text/event-stream":
                        raise BackendUnavailable(
                            self.server,
                            f"GET {self.url} answered HTTP {response.status} {response.content_type or ''}".strip()
                            + ", not an event stream (is this an HTTP+SSE server?)",
                        )
                    async for event in parse_events(response.lines()):
                        if event.event == "endpoint":
                            if not started:
                                task_status.started(endpoint_of(self.server, self.url, event.data))
                                started = True
                        elif event.data and started:
                            await self._dispatch(event.data)
            except ConnectFailed as exc:
                if not started:
                    raise BackendUnreachable(self.server, f"cannot connect ({exc})") from None
                reason = f"cannot connect ({exc})"
            except _CONNECTION_ERRORS as exc:
                if not started:
                    raise BackendUnavailable(self.server, f"{type(exc).__name__}: {exc}") from None
                reason = f"the event stream broke ({type(exc).__name__}: {exc})".replace(": )", ")")
            if not started:
                raise BackendUnavailable(self.server, "the event stream ended before its `endpoint` event")
        if self._stream is not None:  # not closed by us: the server ended it
            log.warning("backend event stream ended", extra={"server": self.server, "reason": reason})
        self._end(reason)

    async def _dispatch(self, data: str) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("backend sent an event that is not JSON", extra={"server": self.server})
            return
        await self.demux.dispatch(message, self.on_unsolicited)

    def _end(self, reason: str) -> None:
        self.demux.fail_pending(reason)
        self.ended.set()


def endpoint_of(server: str, stream_url: str, data: str) -> str:
    """The URL an `endpoint` event names, resolved against the stream's; another origin is
    refused (the router's messages and headers go only where the catalog said)."""
    endpoint = urljoin(stream_url, data.strip())
    mine, theirs = urlsplit(stream_url), urlsplit(endpoint)
    if (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc):
        raise BackendUnavailable(
            server, f"its `endpoint` event points at another origin ({theirs.scheme}://{theirs.netloc})"
        )
    return endpoint
