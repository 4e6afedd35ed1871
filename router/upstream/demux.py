"""Matching what a backend sends on one shared stream to the requests waiting for it.

Over stdio (lines on the child's stdout) and HTTP+SSE (events on the one GET stream) every
message of every request arrives on the same stream, so the channel itself must say whose it
is: a response by its id; anything else to the request it belongs to (by progress token or
related id) or, failing that, to the channel's `on_unsolicited`. `StdioChannel` and `SseChannel`
each own a `Demux` and feed it what they read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from router.errors import BackendUnavailable
from router.upstream.base import Message, MessageHandler, refusal

RELATED_REQUEST_KEY = "io.modelcontextprotocol/related-request-id"

Write = Callable[[Message], Awaitable[None]]
Send = Callable[[], Awaitable[None]]


class Pending:
    """One request waiting for its response."""

    __slots__ = ("done", "on_message", "reply")

    def __init__(self, on_message: MessageHandler | None) -> None:
        self.done = anyio.Event()
        self.reply: Message | BaseException | None = None
        self.on_message = on_message


class Demux:
    def __init__(self, server: str, write: Write, transport: str) -> None:
        self.server = server
        self.write = write
        self.transport = transport  # named in the refusal of an unattributed request
        self.pending: dict[Any, Pending] = {}
        self._progress: dict[Any, Pending] = {}

    async def request(
        self, message: Message, on_message: MessageHandler | None, send: Send | None = None
    ) -> Message:
        """Send `message` (with `send`, by default `write`) and wait for its response, or for the
        failure `fail_pending` sets."""
        pending = Pending(on_message)
        request_id = message["id"]
        self.pending[request_id] = pending
        token = _progress_token(message)
        if token is not None:
            self._progress[token] = pending
        try:
            await (send() if send is not None else self.write(message))
            await pending.done.wait()
        finally:
            self.pending.pop(request_id, None)
            if token is not None:
                self._progress.pop(token, None)
        if isinstance(pending.reply, BaseException):
            raise pending.reply
        assert pending.reply is not None
        return pending.reply

    async def dispatch(self, message: Any, unsolicited: MessageHandler | None) -> None:
        """Hand one message the backend sent to whoever it belongs to."""
        if not isinstance(message, dict):
            return
        if "method" not in message:
            pending = self.pending.get(message.get("id"))
            if pending is not None:
                pending.reply = message
                pending.done.set()
            return
        owner = self._owner(message)
        if owner is not None and owner.on_message is not None:
            await owner.on_message(message)
        elif "id" in message and (asking := self._askers()) > 1:
            await self.write({"jsonrpc": "2.0", "id": message["id"], **self._unattributed(message, asking)})
        elif unsolicited is not None:
            await unsolicited(message)

    def fail_pending(self, reason: str) -> None:
        for pending in list(self.pending.values()):
            if not pending.done.is_set():
                pending.reply = BackendUnavailable(self.server, reason)
                pending.done.set()

    def _owner(self, message: Message) -> Pending | None:
        """The call a message belongs to, when something on the wire says so.

        Progress names its token. Over a shared stream nothing else is on the wire by default:
        neither the TypeScript nor the Python SDK puts the related request id anywhere but in
        transport metadata, which a pipe or the one SSE stream does not carry. A server may still
        name the call in the message's `_meta` (the related-request-id key, or the call's
        progress token, which the router made unique), and is then followed. A request with no
        such tie, while exactly one call waits, can only be that call's; so is a log message then
        (SDK servers log from inside the call, and the call's client is the one that would see
        it on a direct connection)."""
        params = message.get("params") or {}
        token = params.get("progressToken")
        if token is not None:
            return self._progress.get(token)
        meta = params.get("_meta")
        if isinstance(meta, dict):
            related = meta.get(RELATED_REQUEST_KEY)
            if related is not None:
                return self.pending.get(related)
            token = meta.get("progressToken")
            if token is not None and token in self._progress:
                return self._progress[token]
        if ("id" in message or message.get("method") == "notifications/message") and self._askers() == 1:
            return next(pending for pending in self.pending.values() if pending.on_message is not None)
        return None

    def _askers(self) -> int:
        """Calls in flight that could be asked something (the router's own requests cannot)."""
        return sum(1 for pending in self.pending.values() if pending.on_message is not None)

    def _unattributed(self, message: Message, calls: int) -> Message:
        """The answer a request gets when several calls are in flight and it does not say whose
        it is: the router refuses rather than put it before a client that may not be the one asked."""
        return refusal(
            str(message.get("method")),
            f"{calls} calls are in flight on this {self.transport} server and the request does not say "
            "which one asks (no related request id or progress token in its _meta)",
        )


def _progress_token(message: Message) -> Any:
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    meta = params.get("_meta")
    return meta.get("progressToken") if isinstance(meta, dict) else None
