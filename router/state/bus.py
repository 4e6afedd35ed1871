"""How messages reach a legacy client: the one seam every client-bound message goes through.

A client's GET stream is held by one replica; the message for it may be born on another (a
backend's notification, a server-to-client request, a catalog change). `ClientBus` hides where
the stream is: `deliver()` pushes onto the local stream if this replica holds it, else the NATS
implementation publishes on the session's subject, which the holding replica subscribes to for
as long as the stream is open. Server-to-client requests use `request()`, which waits for the
matching reply; a client posts that reply to whichever replica its load balancer picks, and
`answer()` routes it back to the replica that waits for it.

`LocalBus` is the embedded default (one replica); `NatsBus` is the shared one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import orjson

from router.errors import RPCError
from router.state.sessions import LocalSession, SessionStore, token_of

if TYPE_CHECKING:  # nats (and the aiohttp it imports) loads only when --nats is used
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from router.state.nats_link import NatsLink

log = logging.getLogger("toolmesh.bus")

Message = dict[str, Any]
MessageSender = Callable[[Message], Awaitable[None]]
MayRead = Callable[[str, frozenset[str]], bool]
"""Whether an agent (id, groups) may still read what a message is about; the guard decides."""
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


def reader_of(session: LocalSession) -> tuple[str, frozenset[str]]:
    """The agent (id, groups) that opened the session, as `MayRead` takes it."""
    identity = session.record.identity or {}
    return session.record.agent, frozenset(identity.get("groups") or ())


class _Pending:
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
        self.pending = _Pending()

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


@dataclass(slots=True)
class _Claim:
    """This replica's claim on a session's stream: confirmed once NATS has echoed it back."""

    session_id: str
    nonce: bytes
    confirmed: bool = False


class NatsBus(LocalBus):
    """Replicas behind one address: per-session subjects carry what another replica must write.

    `<prefix>.session.<token>.out` carries messages for the client's stream (subscribed by the
    replica holding it), `<prefix>.session.<token>.reply` carries the client's replies to the
    replica that waits for them (subscribed while it waits), `<prefix>.session.<token>.cancel`
    a client's `notifications/cancelled` that reached a replica not running the call (every
    replica follows `session.*.cancel` with one subscription, so a call costs no NATS work).

    A replica opening a stream claims it on `<prefix>.session.<token>.claim`. The newer stream
    wins, and "newer" is the order in which the NATS server received the claims, which every
    subscriber sees the same, not wall clocks (replicas' clocks may differ by more than the gap
    between two GETs): a replica holding a stream closes it on another replica's claim that
    arrives after its own claim came back to it, and ignores one that arrives before. So a
    message is never written to two streams (one stream per session, as on one replica). With
    NATS down, only local delivery works, as on one replica.
    """

    def __init__(self, sessions: SessionStore, link: NatsLink) -> None:
        super().__init__(sessions)
        self.link = link
        self._streams: dict[str, Subscription] = {}
        self._replies: dict[str, tuple[Subscription, int]] = {}
        self.replica = secrets.token_hex(8).encode()
        self._claim_sub: Subscription | None = None
        self._claims: dict[str, _Claim] = {}  # token -> the claim of a stream held here
        # Cancels a call running here, by (session id, request id); True if there was one.
        self.on_cancel: Callable[[str, Any], bool] | None = None

    async def start(self, up: bool) -> None:
        """Link listener: follow stream claims and cancellations once the link is first up."""
        if up and self._claim_sub is None:
            self._claim_sub = await self.link.subscribe(
                self.link.subject("session", "*", "claim"), self._on_claim
            )
            await self.link.subscribe(self.link.subject("session", "*", "cancel"), self._on_cancel)

    async def _on_claim(self, msg: Msg) -> None:
        replica, _, nonce = msg.data.partition(b" ")
        claim = self._claims.get(msg.subject.rsplit(".", 2)[-2])
        if claim is None:
            return
        if replica == self.replica:
            claim.confirmed = claim.confirmed or nonce == claim.nonce
            return
        if not claim.confirmed:
            return  # a claim the server received before ours: ours is the newer stream
        session = self.sessions.get(claim.session_id)
        if session is not None and session.outbox is not None:
            session.close()  # the client opened a newer stream on another replica

    async def _on_cancel(self, msg: Msg) -> None:
        request = orjson.loads(msg.data)
        if self.on_cancel is not None:
            self.on_cancel(request["session"], request["request"])

    async def cancel(self, session_id: str, request_id: Any) -> None:
        """Tell every replica; the one running the call cancels it, the others find nothing."""
        payload = orjson.dumps({"session": session_id, "request": request_id})
        await self.link.publish(self._subject(session_id, "cancel"), payload)

    def _subject(self, session_id: str, kind: str) -> str:
        return self.link.subject("session", token_of(session_id), kind)

    async def deliver(self, session_id: str, message: Message) -> bool:
        session = self.sessions.get(session_id)
        if session is not None and session.outbox is not None:
            return session.push(message)
        return await self.link.publish(self._subject(session_id, "out"), orjson.dumps(message))

    async def stream_opened(self, session: LocalSession) -> None:
        session_id = session.record.id
        claim = _Claim(session_id, secrets.token_hex(6).encode())
        self._claims[token_of(session_id)] = claim  # before publishing: the echo may come at once
        if not await self.link.publish(self._subject(session_id, "claim"), self.replica + b" " + claim.nonce):
            claim.confirmed = True  # NATS down: nobody hears it; a later claim is newer
        old = self._streams.pop(session_id, None)
        if old is not None:
            await _unsubscribe(old)

        async def on_message(msg: Msg) -> None:
            local = self.sessions.get(session_id)
            if local is not None:
                local.push(orjson.loads(msg.data))

        try:
            sub = await self.link.subscribe(self._subject(session_id, "out"), on_message)
        except Exception as exc:  # NATS down: the stream still gets what this replica sends
            log.debug("stream subscription failed", extra={"error": str(exc)})
            return
        if sub is not None:
            self._streams[session_id] = sub

    async def stream_closed(self, session: LocalSession) -> None:
        if session.outbox is not None:
            return  # a newer stream replaced the one that ended
        self._claims.pop(token_of(session.record.id), None)
        sub = self._streams.pop(session.record.id, None)
        if sub is not None:
            await _unsubscribe(sub)

    async def request(
        self, session_id: str, message: Message, timeout: float, via: MessageSender | None = None
    ) -> Message:
        await self._watch_replies(session_id)
        try:
            return await super().request(session_id, message, timeout, via)
        finally:
            await self._unwatch_replies(session_id)

    async def answer(self, session_id: str, message: Message) -> bool:
        if self.pending.resolve(session_id, message):
            return True
        nc = self.link.nc
        if nc is None or not self.link.connected:
            return False
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        try:
            await nc.request(self._subject(session_id, "reply"), orjson.dumps(message), timeout=2.0)
        except (NoRespondersError, NatsTimeout):
            return False
        return True

    async def _watch_replies(self, session_id: str) -> None:
        held = self._replies.get(session_id)
        if held is not None:
            self._replies[session_id] = (held[0], held[1] + 1)
            return

        async def on_reply(msg: Msg) -> None:
            if self.pending.resolve(session_id, orjson.loads(msg.data)) and msg.reply:
                await msg.respond(b"ok")

        try:
            sub = await self.link.subscribe(self._subject(session_id, "reply"), on_reply)
        except Exception:
            sub = None
        if sub is not None:
            self._replies[session_id] = (sub, 1)

    async def _unwatch_replies(self, session_id: str) -> None:
        held = self._replies.get(session_id)
        if held is None:
            return
        if held[1] > 1:
            self._replies[session_id] = (held[0], held[1] - 1)
            return
        del self._replies[session_id]
        await _unsubscribe(held[0])

    async def session_ended(self, session_id: str) -> None:
        """The session was deleted (here or elsewhere): stop listening for it."""
        self._claims.pop(token_of(session_id), None)
        sub = self._streams.pop(session_id, None)
        if sub is not None:
            await _unsubscribe(sub)


async def _unsubscribe(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except Exception as exc:  # already gone with a closed connection
        log.debug("unsubscribe failed", extra={"error": str(exc)})
