"""How messages reach a legacy client: the one seam every client-bound message goes through.

A client's GET stream is held by one replica; the message for it may be born on another (a
backend's notification, a server-to-client request, a catalog change). `ClientBus` hides where
the stream is: `deliver()` pushes onto the local stream if this replica holds it, else the NATS
implementation publishes on the session's subject, which the holding replica subscribes to for
as long as the stream is open. Server-to-client requests use `request()`, which waits for the
matching reply; a client posts that reply to whichever replica its load balancer picks, and
`answer()` routes it back to the replica that waits for it.

`LocalBus` is the embedded default (one replica); the shared one is `router/cluster/bus.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import orjson

from router.errors import RPCError
from router.state.sessions import LocalSession, SessionStore

log = logging.getLogger("toolmesh.bus")

Message = dict[str, Any]
MessageSender = Callable[[Message], Awaitable[None]]
# Who holds a stream: the agent's id and groups, the namespace it was opened in (None: /mcp),
# and the tools mode its client asked for on the URL (None: none; docs/tool-search.md).
Reader = tuple[str, frozenset[str], str | None, str | None]
MayRead = Callable[[str, frozenset[str], str | None, str | None], bool]
"""Whether a reader (agent id, groups, namespace, tools mode) may still read what a message is
about, or needs to hear it at all (a namespace hears only changes of its own lists, a search-mode
client only changes of its own list); the guard decides."""
CLIENT_GONE = -32001


class ClientBus(Protocol):
    async def deliver(self, session_id: str, message: Message) -> bool: ...
    def broadcast(self, message: Message, may_read: MayRead | None = None) -> int: ...
    async def stream_opened(self, session: LocalSession) -> None: ...
    async def stream_closed(self, session: LocalSession) -> None: ...
    async def request(
        self, session_id: str, message: Message, timeout: float, via: MessageSender | None = None
    ) -> Message: ...
    async def answer(self, session_id: str, message: Message) -> bool: ...
    async def cancel(self, session_id: str, request_id: Any) -> None: ...


def wants(session: LocalSession, message: Message) -> bool:
    """A legacy session hears every list_changed, and updates only of what it subscribed to."""
    if message.get("method") == "notifications/resources/updated":
        return (message.get("params") or {}).get("uri") in session.record.subscriptions
    return True


def reader_of(session: LocalSession) -> Reader:
    """The agent (id, groups) that opened the session, its namespace and tools mode, as `MayRead`
    takes them."""
    identity = session.record.identity or {}
    groups = frozenset(identity.get("groups") or ())
    return session.record.agent, groups, identity.get("namespace"), session.record.tools_mode


class Pending:
    """Server-to-client requests waiting for the client's reply, by session and request id."""

    def __init__(self) -> None:
        self.waiting: dict[tuple[str, str], tuple[anyio.Event, list[Message]]] = {}

    def open(self, session_id: str, request_id: Any) -> tuple[anyio.Event, list[Message]]:
        slot: tuple[anyio.Event, list[Message]] = (anyio.Event(), [])
        self.waiting[(session_id, _key(request_id))] = slot
        return slot

    def close(self, session_id: str, request_id: Any) -> None:
        self.waiting.pop((session_id, _key(request_id)), None)

    def resolve(self, session_id: str, message: Message) -> bool:
        slot = self.waiting.pop((session_id, _key(message.get("id"))), None)
        if slot is None:
            return False
        slot[1].append(message)
        slot[0].set()
        return True

    def sessions(self) -> set[str]:
        return {session_id for session_id, _ in self.waiting}


def _key(request_id: Any) -> str:
    return orjson.dumps(request_id).decode()


class LocalBus:
    """One replica: the client's stream, if any, is here."""

    def __init__(self, sessions: SessionStore) -> None:
        self.sessions = sessions
        self.pending = Pending()

    async def deliver(self, session_id: str, message: Message) -> bool:
        session = self.sessions.get(session_id)
        return session is not None and session.push(message)

    def broadcast(self, message: Message, may_read: MayRead | None = None) -> int:
        """Queue a message on every GET stream this replica holds that wants it; how many took it.

        `may_read` (a resource update under a policy) is asked about each session's agent: a
        subscription made while the policy allowed it does not outlive the policy's change."""
        return sum(
            session.push(message)
            for session in self.sessions.all()
            if wants(session, message) and (may_read is None or may_read(*reader_of(session)))
        )

    async def stream_opened(self, session: LocalSession) -> None:
        """Nothing to announce: there is no other replica."""

    async def stream_closed(self, session: LocalSession) -> None:
        """Nothing to withdraw."""

    async def request(
        self, session_id: str, message: Message, timeout: float, via: MessageSender | None = None
    ) -> Message:
        """Send a request to the client and wait for its reply: on its GET stream, or with `via`
        (the stream of the call that caused it, where a server-to-client request belongs)."""
        event, box = self.pending.open(session_id, message["id"])
        try:
            if via is not None:
                await via(message)
            elif not await self.deliver(session_id, message):
                raise RPCError(CLIENT_GONE, "the client has no open stream to receive the request; retry")
            with anyio.fail_after(timeout):
                await event.wait()
        except TimeoutError:
            raise RPCError(CLIENT_GONE, f"the client did not answer within {timeout:g} s") from None
        finally:
            self.pending.close(session_id, message["id"])
        return box[0]

    async def answer(self, session_id: str, message: Message) -> bool:
        """A client's reply to one of our requests; False if nobody waits for it."""
        return self.pending.resolve(session_id, message)

    async def cancel(self, session_id: str, request_id: Any) -> None:
        """A cancellation of a call that is not running here: one replica runs every call."""
