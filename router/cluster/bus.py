"""The client bus across replicas: per-session NATS subjects carry what another replica must
write to a client's stream, and the client's replies back (the seam is `state/bus.py` `ClientBus`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from anyio.abc import TaskGroup
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from router.cluster.link import NatsLink
from router.lifecycle import Service
from router.state.bus import LocalBus, Message, MessageSender
from router.state.sessions import LocalSession, SessionStore, token_of

log = logging.getLogger("toolmesh.bus")


@dataclass(slots=True)
class _Claim:
    """This replica's claim on a session's stream: confirmed once NATS has echoed it back."""

    session_id: str
    nonce: bytes
    confirmed: bool = False


class NatsBus(LocalBus, Service):
    """Replicas behind one address: per-session subjects carry what another replica must write.

    `<prefix>.session.<token>.out` carries messages for the client's stream (subscribed by the
    replica holding it), `<prefix>.session.<token>.reply` carries the client's replies to the
    replica that waits for them (subscribed while it waits), `<prefix>.session.<token>.cancel`
    a client's `notifications/cancelled` that reached a replica not running the call (every
    replica follows `session.*.cancel` with one subscription, `RemoteCancels`, so a call costs
    no NATS work).

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

    async def start(self, tg: TaskGroup) -> None:
        self.link.watch(self._on_link)

    async def _on_link(self, up: bool) -> None:
        """Follow stream claims once the link is first up."""
        if up and self._claim_sub is None:
            self._claim_sub = await self.link.subscribe(
                self.link.subject("session", "*", "claim"), self._on_claim
            )

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


class RemoteCancels(Service):
    """Cancellations POSTed to other replicas, for the calls running here (`session.*.cancel`)."""

    def __init__(self, link: NatsLink, cancel: Callable[[str, Any], bool]) -> None:
        """`cancel(session id, request id)` ends a call running here; True if there was one."""
        self.link = link
        self.cancel = cancel
        self._subscribed = False

    async def start(self, tg: TaskGroup) -> None:
        self.link.watch(self._on_link)

    async def _on_link(self, up: bool) -> None:
        if up and not self._subscribed:
            self._subscribed = True
            await self.link.subscribe(self.link.subject("session", "*", "cancel"), self._on_cancel)

    async def _on_cancel(self, msg: Msg) -> None:
        request = orjson.loads(msg.data)
        self.cancel(request["session"], request["request"])


async def _unsubscribe(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except Exception as exc:  # already gone with a closed connection
        log.debug("unsubscribe failed", extra={"error": str(exc)})
