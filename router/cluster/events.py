"""Resuming a 2025-11-25 stream on a replica that does not keep its events.

A polled or dropped request stream is resumed with a GET carrying `Last-Event-ID`, which the load
balancer may send to any replica; the events are kept by the replica that ran the call, and the
event id names it (`<replica>.<stream>.<seq>`, server/events.py). The replica the GET reached
asks the keeper over NATS request/reply on `<prefix>.events.<replica>`: "session S, after event E,
to inbox I". The keeper answers whether it has that stream, then sends each event as a request to
the inbox and waits for the reply, which comes once the event is written to the client: the
client's pace is the keeper's, and when the client leaves (the inbox has no responder any more)
the keeper stops. While the call is quiet the keeper sends a keepalive; the response is the last
event, then an end mark.

If the keeper does not answer, it is gone and so are the events it kept: the client is told so
(410, send the request again) instead of getting a stream that never ends. With NATS down the
keeper cannot be asked: 503, retry. A keeper that dies mid-stream goes quiet; the stream ends
after `2 * keepalive + 5` seconds of silence and the client's next resumption is told it is gone.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from router.cluster.link import NatsLink, ReplicaService
from router.server.events import GONE, UNKNOWN, EventStore, ResumeRefused, Write

log = logging.getLogger("toolmesh.relay")

EVENT, KEEPALIVE, END = b"e", b"k", b"z"
ASK_TIMEOUT = 2.0
# How long the keeper waits for one event to be written to the client before it gives up.
WRITE_TIMEOUT = 30.0


class Replay:
    """A stream another replica keeps, being followed from here (see `SharedEvents.open`)."""

    def __init__(self, sub: Subscription, inbox: MemoryObjectReceiveStream[Msg], silence: float) -> None:
        self._sub = sub
        self._inbox = inbox
        self._silence = silence

    async def follow(self, write: Write) -> None:
        """Write each event as it comes, until the end mark (or the keeper goes quiet)."""
        while True:
            with anyio.move_on_after(self._silence):
                msg = await self._inbox.receive()
                kind, body = msg.data[:1], msg.data[1:]
                if kind == END:
                    await msg.respond(b"")
                    return
                if kind == EVENT:
                    event_id, _, data = body.partition(b"\n")
                    await write(event_id.decode(), data)
                else:
                    await write(None, b"")
                await msg.respond(b"")
                continue
            log.warning("the replica keeping a resumed stream went quiet; ending it")
            return

    async def __aenter__(self) -> Replay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._inbox.close()
        try:
            await self._sub.unsubscribe()
        except Exception as error:  # a closed connection dropped it already
            log.debug("unsubscribe failed", extra={"error": str(error)})


class SharedEvents(ReplicaService):
    """Serves this replica's event logs to the others and follows theirs for its clients."""

    def __init__(self, link: NatsLink, store: EventStore, keepalive: float = 5.0) -> None:
        super().__init__(link, "events", store.replica)
        self.store = store
        self.keepalive = keepalive

    # -- on the replica the client came back to -------------------------------------------------

    async def open(self, keeper: str, session_id: str, last_event_id: str) -> Replay:
        """Ask `keeper` for the stream after `last_event_id`; ResumeRefused if it cannot be had."""
        nc = self.link.nc
        if nc is None or not self.link.connected:
            raise ResumeRefused(503, "the stream is kept by another router replica, unreachable now: retry")
        send, receive = anyio.create_memory_object_stream[Msg](4)

        async def on_event(msg: Msg) -> None:
            # After the client left, no reply: the keeper's request fails and it stops.
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await send.send(msg)

        inbox = nc.new_inbox()
        sub = await self.link.subscribe(inbox, on_event)
        if sub is None:
            raise ResumeRefused(503, "the stream is kept by another router replica, unreachable now: retry")
        replay = Replay(sub, receive, 2 * self.keepalive + 5)
        ask = orjson.dumps({"session": session_id, "last": last_event_id, "inbox": inbox})
        try:
            answer = await nc.request(self.link.subject("events", keeper), ask, timeout=ASK_TIMEOUT)
            found = orjson.loads(answer.data).get("found") is True
        except (NoRespondersError, NatsTimeout):
            await replay.__aexit__(None, None, None)
            raise ResumeRefused(410, GONE) from None
        if not found:
            await replay.__aexit__(None, None, None)
            raise ResumeRefused(410, UNKNOWN)
        return replay

    # -- on the keeper --------------------------------------------------------------------------

    async def handle(self, msg: Msg) -> None:
        """Send one of this replica's streams to the replica that asks for it."""
        ask: dict[str, Any] = orjson.loads(msg.data)
        found = self.store.find(str(ask.get("session")), str(ask.get("last")))
        await msg.respond(orjson.dumps({"found": found is not None}))
        if found is None:
            return
        stream, seq = found
        inbox = str(ask["inbox"])
        try:
            while True:
                changed = stream.changed
                batch = stream.after(seq)
                for event_id, data in batch:
                    if data:
                        await self._send(inbox, EVENT + event_id.encode() + b"\n" + data)
                if batch:
                    seq = int(batch[-1][0].rpartition(".")[2])
                if stream.done:
                    await self._send(inbox, END)
                    return
                with anyio.move_on_after(self.keepalive):
                    await changed.wait()
                    continue
                await self._send(inbox, KEEPALIVE)
        except (NoRespondersError, NatsTimeout, ConnectionError):
            log.debug("a resumed stream's client left", extra={"stream": stream.stream_id})

    async def _send(self, inbox: str, payload: bytes) -> None:
        nc = self.link.nc
        if nc is None:
            raise ConnectionError("NATS is not connected")
        await nc.request(inbox, payload, timeout=WRITE_TIMEOUT)
