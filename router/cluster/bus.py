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
from nats.js.errors import KeyNotFoundError

from router.cluster.link import NatsLink
from router.lifecycle import Service
from router.state.bus import LocalBus, Message, MessageSender
from router.state.sessions import LocalSession, SessionStore, token_of

log = logging.getLogger("toolmesh.bus")


CLAIMS = "claims"  # the KV bucket whose revisions order stream claims
CLAIM_TTL = 3600.0  # seconds a claim's entry is kept; its revision is what counts, not the entry


@dataclass(slots=True)
class _Claim:
    """This replica's claim on a session's stream, ordered by the revision NATS gave it."""

    session_id: str
    revision: int | None = None  # None while the claim is being written
    newest_other: int = 0  # the newest claim of another replica heard while it was written


class NatsBus(LocalBus, Service):
    """Replicas behind one address: per-session subjects carry what another replica must write.

    `<prefix>.session.<token>.out` carries messages for the client's stream (subscribed by the
    replica holding it), `<prefix>.session.<token>.reply` carries the client's replies to the
    replica that waits for them (subscribed while it waits), `<prefix>.session.<token>.cancel`
    a client's `notifications/cancelled` that reached a replica not running the call (every
    replica follows `session.*.cancel` with one subscription, `RemoteCancels`, so a call costs
    no NATS work).

    A replica opening a stream claims it: it writes the session's key in the KV bucket
    `<prefix>_claims` and announces the revision NATS gave that write on
    `<prefix>.session.<token>.claim`. The newer stream wins, and "newer" is the higher revision:
    one counter in the NATS server, the same for every replica, and neither wall clocks
    (replicas' clocks may differ by more than the gap between two GETs) nor the order in which
    claims arrive (NATS orders messages per publisher only, and replicas on different servers of
    a NATS cluster may hear two claims in opposite orders). A replica holding a stream closes it
    on another replica's claim with a higher revision, also one heard while its own claim was
    being written, and ignores one with a lower revision, however late it arrives. So a message
    is never written to two streams (one stream per session, as on one replica). With NATS down
    a claim gets no revision (0): only local delivery works, as on one replica. When the link is
    back (`_catch_up`) a replica reads the bucket's last claim of each stream it holds, since
    claims published meanwhile never reached it, and numbers and announces its own unnumbered
    ones.
    """

    def __init__(self, sessions: SessionStore, link: NatsLink) -> None:
        super().__init__(sessions)
        self.link = link
        self._streams: dict[str, Subscription] = {}
        self._replies: dict[str, tuple[Subscription, int]] = {}
        self.replica = secrets.token_hex(8).encode()
        self._claim_sub: Subscription | None = None
        self._claims: dict[str, _Claim] = {}  # token -> the claim of a stream held here
        self._tg: TaskGroup | None = None

    async def start(self, tg: TaskGroup) -> None:
        self._tg = tg
        self.link.watch(self._on_link)

    async def _on_link(self, up: bool) -> None:
        """Follow stream claims once the link is first up; when it is back, catch up on them."""
        if up and self._claim_sub is None:
            self._claim_sub = await self.link.subscribe(
                self.link.subject("session", "*", "claim"), self._on_claim
            )
        elif up and self._tg is not None:
            self._tg.start_soon(self._catch_up)

    async def _catch_up(self) -> None:
        """After an outage: claims published meanwhile were not heard, and claims made here
        meanwhile have no revision. The claims bucket has the last claim of each session: a
        stream held here that another replica claimed since is closed, and a claim made here
        while NATS was away is numbered and announced now (so an older stream elsewhere closes)."""
        try:
            kv = await self.link.key_value(CLAIMS, ttl=CLAIM_TTL)
        except Exception:
            return
        for token, claim in list(self._claims.items()):
            if claim.revision is None:
                continue  # being numbered now: it will be announced
            if claim.revision == 0:
                claim.revision = await self._number(token)
                if claim.revision:
                    await self._announce(claim)
                continue
            try:
                entry = await kv.get(token)
            except KeyNotFoundError:
                continue
            except Exception:
                return  # gone again: the next reconnect catches up
            if (entry.revision or 0) > claim.revision and entry.value != self.replica:
                self._close_stream(claim)

    async def _announce(self, claim: _Claim) -> None:
        payload = b"%s %d" % (self.replica, claim.revision or 0)
        await self.link.publish(self._subject(claim.session_id, "claim"), payload)

    async def _on_claim(self, msg: Msg) -> None:
        replica, _, number = msg.data.partition(b" ")
        claim = self._claims.get(msg.subject.rsplit(".", 2)[-2])
        if claim is None or replica == self.replica or not number.isdigit():
            return
        revision = int(number)
        if claim.revision is None:  # ours is being written: compare once NATS has numbered it
            claim.newest_other = max(claim.newest_other, revision)
        elif revision > claim.revision:
            self._close_stream(claim)  # the client opened a newer stream on another replica

    def _close_stream(self, claim: _Claim) -> None:
        session = self.sessions.get(claim.session_id)
        if session is not None and session.outbox is not None:
            session.close()

    async def _number(self, token: str) -> int:
        """Write the claim's key; the revision NATS gave the write (0 if NATS is down)."""
        if not self.link.connected:
            return 0
        try:
            kv = await self.link.key_value(CLAIMS, ttl=CLAIM_TTL)
            return await kv.put(token, self.replica)
        except Exception as exc:
            log.debug("stream claim not numbered", extra={"error": str(exc)})
            return 0

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
        token = token_of(session_id)
        claim = _Claim(session_id)
        self._claims[token] = claim  # before numbering it: a newer claim may be heard meanwhile
        claim.revision = await self._number(token)
        if self._claims.get(token) is not claim:
            return  # the stream was already replaced or closed
        if claim.newest_other > claim.revision:
            self._close_stream(claim)  # another replica claimed it after us, and was heard first
            return
        if claim.revision:
            await self._announce(claim)
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
