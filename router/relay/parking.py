"""Era bridge for a 2026-07-28 client in front of a legacy backend: parked upstream calls.

A legacy backend asks its client mid-call (sampling, elicitation, roots) and waits. A 2026-07-28
client cannot be asked mid-call: it expects an input-required result and retries with a new
request carrying `inputResponses` and the `requestState` it was given. So the router keeps the
upstream call running (parked, in a task that outlives the HTTP request), returns the backend's
questions as an input-required result whose `requestState` the router mints, and when the retry
comes, answers the backend with the client's responses and waits for what comes next.

The minted state is `tm1.<payload>.<mac>`: the payload names the parked call (the key it is
found by, so any replica that can reach the call can serve the retry), the HMAC-SHA256 under the
cluster key makes a forged or edited state fail with a clear error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from router.errors import BACKEND_TIMEOUT, INVALID_PARAMS, RPCError
from router.lifecycle import Service
from router.upstream.base import Message, MessageHandler

log = logging.getLogger("toolmesh.relay")

STATE_PREFIX = "tm1."


class StateCodec:
    """Mints and checks the router's own `requestState` values."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"toolmesh requestState\x00" + key).digest()

    def mint(self, payload: dict[str, Any]) -> str:
        body = orjson.dumps(payload)
        return STATE_PREFIX + _b64(body) + "." + _b64(self._mac(body))

    @staticmethod
    def is_ours(state: Any) -> bool:
        return isinstance(state, str) and state.startswith(STATE_PREFIX)

    def open(self, state: str) -> dict[str, Any]:
        try:
            body_text, mac_text = state.removeprefix(STATE_PREFIX).split(".", 1)
            body, mac = _unb64(body_text), _unb64(mac_text)
            payload = orjson.loads(body)
        except (ValueError, orjson.JSONDecodeError):
            raise RPCError(INVALID_PARAMS, "invalid requestState: pass it back unchanged") from None
        if not hmac.compare_digest(mac, self._mac(body)) or not isinstance(payload, dict):
            raise RPCError(INVALID_PARAMS, "invalid requestState: it was altered or is not from this router")
        return payload

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]


@dataclass(eq=False)
class ParkedCall:
    """One upstream call kept running across a 2026-07-28 client's input-required rounds."""

    id: str
    server: str
    respond: Callable[[Any, Message], Awaitable[None]]
    events: MemoryObjectSendStream[Message]
    inbox: MemoryObjectReceiveStream[Message]
    pending: dict[str, Any] = field(default_factory=dict)  # input key -> upstream request id
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    relay: Any = None  # call_relay.CallRelay: where progress and logs of the current round go


class ParkedElsewhere(RPCError):
    """The call was parked by another replica: forward the retry there (cluster/parked.py),
    or, if that is not possible, tell the client to start over (retryable)."""

    def __init__(self, replica: str) -> None:
        super().__init__(
            INVALID_PARAMS,
            "requestState refers to a call held by another router replica that cannot be reached; "
            "send the request again without it",
        )
        self.replica = replica


class Parking(Service):
    """Parked calls of this replica, keyed by the id their minted `requestState` carries.

    A service: parked calls run in its task group, for as long as it is entered."""

    def __init__(self, codec: StateCodec, ttl: float) -> None:
        self.codec = codec
        self.ttl = ttl
        # Named in every minted state, so a retry that lands on another replica knows where to go.
        self.replica = secrets.token_hex(6)
        self._calls: dict[str, ParkedCall] = {}
        self._tg: TaskGroup | None = None

    async def start(self, tg: TaskGroup) -> None:
        self._tg = tg

    async def stop(self) -> None:
        self._tg = None

    def __len__(self) -> int:
        return len(self._calls)

    async def park(
        self,
        server: str,
        call: Callable[[MessageHandler], Awaitable[Message]],
        respond: Callable[[Any, Message], Awaitable[None]],
        relay: Any,
        on_message: Callable[[ParkedCall, Message], Awaitable[None]],
    ) -> tuple[ParkedCall, Message]:
        """Start `call` in the background; return it with its first event (a question or the reply)."""
        if self._tg is None:
            raise RPCError(-32603, "the router is not running")
        events, inbox = anyio.create_memory_object_stream[Message](64)
        parked = ParkedCall(secrets.token_urlsafe(12), server, respond, events, inbox, relay=relay)
        self._calls[parked.id] = parked

        async def handle(message: Message) -> None:
            await on_message(parked, message)

        async def run() -> None:
            with parked.scope:
                try:
                    reply = await call(handle)
                except RPCError as exc:
                    reply = {"error": exc.to_error()}
                except Exception as exc:  # a bug must not take every parked call down with it
                    log.exception("parked call failed", extra={"server": server})
                    reply = {"error": {"code": -32603, "message": f"internal error: {exc!r}"}}
                await events.send({"_done": reply})
                # Nobody may come back for the result (the client gave up): drop it after the TTL.
                await anyio.sleep(self.ttl)
            self._calls.pop(parked.id, None)

        self._tg.start_soon(run)
        try:
            return parked, await self.next_event(parked)
        except anyio.get_cancelled_exc_class():
            self.drop(parked)  # the client went away before the first question: nobody to ask
            raise

    def find(self, state: str) -> ParkedCall:
        payload = self.codec.open(state)
        parked = self._calls.get(str(payload.get("call")))
        replica = payload.get("replica")
        if parked is None and isinstance(replica, str) and replica != self.replica:
            raise ParkedElsewhere(replica)
        if parked is None:
            raise RPCError(
                INVALID_PARAMS,
                "requestState refers to a call that is over or expired; send the request again without it",
            )
        return parked

    def state_for(self, parked: ParkedCall) -> str:
        return self.codec.mint({"call": parked.id, "server": parked.server, "replica": self.replica})

    async def next_event(self, parked: ParkedCall) -> Message:
        """The call's next question(s) or its reply, within the TTL."""
        with anyio.move_on_after(self.ttl):
            return await parked.inbox.receive()
        self.drop(parked)
        raise RPCError(BACKEND_TIMEOUT, f"server '{parked.server}' did not answer in time")

    def drop(self, parked: ParkedCall) -> None:
        parked.scope.cancel()
        self._calls.pop(parked.id, None)

    def finished(self, parked: ParkedCall) -> None:
        self.drop(parked)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
