"""Which upstream session serves a client's request: `Backend.lease_for(client)`.

A backend's shared session serves every client and declares everything the router can relay.
Some legacy backends need to see one client as it is: they decide what to offer from the
capabilities their session declared, and ask "their client" things outside any call. For a
client that declared such capabilities (`TAILORED_CAPABILITIES`) the backend lends a session of
its own kind:

- a legacy HTTP backend: the client's own session (a variant, `variants.py`), kept until the
  client's session ends, if the client has a session and can be asked outside calls;
- a legacy stdio backend: a child started with the client's capabilities (`children.py`), shared
  by clients that declared the same; a client that declared roots needs a session to own it;
- everyone else, and every 2026-07-28 backend (which reads capabilities from each request's
  envelope): the shared session.

The relay only describes the client (`Client`: its era, capabilities, session, and how it answers
outside calls) and gets a `Lease` for one call: the request goes on it, and the backend's
questions during the call are answered on it. The client's era travels with it, so which session
serves which era is decided here, beside the sessions, and nowhere in the relay.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from anyio.abc import TaskGroup

from router.catalog.record import BackendRecord
from router.eras import MODERN, Era, legacy_client_envelope
from router.errors import (
    METHOD_NOT_FOUND,
    BackendError,
    BackendUnavailable,
    BackendUnreachable,
    SessionExpired,
)
from router.upstream.base import Message, MessageHandler, Outside
from router.upstream.children import Children, ChildSpec
from router.upstream.session import UpstreamSession
from router.upstream.variants import Variants


class Lender(Protocol):
    """What a lease needs of the `Backend` that lent it, and what the relay reads of it through
    the lease (a protocol: backend.py imports this module, so this one does not import it)."""

    @property
    def server(self) -> str: ...

    @property
    def record(self) -> BackendRecord: ...

    def lose(self, reason: str) -> None: ...

    async def on_unsolicited(self, message: Message) -> None: ...


# Client capabilities that make a legacy backend get a session (HTTP) or a child (stdio) that
# declares them for this client: such backends may tailor what they offer to them and ask the
# client outside calls.
TAILORED_CAPABILITIES = frozenset({"sampling", "elicitation", "roots"})

LeaseKind = Literal["shared", "variant", "child"]


@dataclass(slots=True)
class Client:
    """The client a request is made for, as much of it as the upstream side needs."""

    era: Era
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    # A legacy client's session id: sessions and children kept for it are found and dropped by
    # it. None: a client without a session (2026-07-28, or plain HTTP).
    session_id: str | None = None
    # How the client answers what a backend says on its own session outside any call; None: it
    # cannot be asked (and gets no HTTP session of its own).
    outside: Outside | None = None
    log_level: str | None = None  # a legacy client's logging/setLevel, for a 2026-07-28 backend

    @property
    def envelope(self) -> dict[str, Any] | None:
        """What a 2026-07-28 backend reads of this client from each request's `_meta` (a
        2026-07-28 client sends its own envelope; a legacy client's is made from its session)."""
        if self.era == MODERN:
            return None
        return legacy_client_envelope(self.capabilities, self.log_level)

    @property
    def tailored(self) -> bool:
        """Whether a legacy backend should see this client's own capabilities."""
        return not TAILORED_CAPABILITIES.isdisjoint(self.capabilities)


class Lease:
    """One call's upstream session on one backend."""

    __slots__ = ("backend", "kind", "session")

    def __init__(self, backend: Lender, session: UpstreamSession, kind: LeaseKind) -> None:
        self.backend, self.session, self.kind = backend, session, kind

    @property
    def own_session_id(self) -> str | None:
        """The upstream session id of the client's own HTTP session, if this is one."""
        return self.session.session_id if self.kind == "variant" else None

    @property
    def replaceable(self) -> bool:
        """A child that died under this lease: another may take the request (it never got it)."""
        return self.kind == "child" and not self.session.channel.alive

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timeout: float,
        on_message: MessageHandler | None,
        *,
        headers: Mapping[str, str] | None = None,
        param_headers: Mapping[str, str] | None = None,
        client: Client | None = None,
    ) -> Message:
        """One request on this lease's session for `client` (whose envelope a 2026-07-28 session
        sends with it)."""
        session = self.session
        client_meta = client.envelope if client is not None and session.era == MODERN else None
        try:
            return await session.request(
                method,
                params,
                timeout,
                on_message,
                headers=headers,
                param_headers=param_headers,
                client_meta=client_meta,
            )
        except BackendUnavailable as exc:
            # A child that dies fails only its own calls (the pool starts another); a shared or
            # own session that is gone takes the backend's connection with it.
            if self.kind != "child" and (not session.channel.alive or isinstance(exc, BackendUnreachable)):
                self.backend.lose(exc.message)
            raise

    async def respond(self, request_id: Any, reply: Message) -> None:
        """Answer (`{"result": ...}` or `{"error": ...}`) a request the backend sent on this lease."""
        await self.session.respond(request_id, reply)

    async def answer_outside_call(self, message: Message) -> None:
        """A request no call waits for: ping is answered, the rest refused (no client to ask)."""
        if message["method"] == "ping":
            await self.respond(message["id"], {"result": {}})
        else:
            error = {
                "code": METHOD_NOT_FOUND,
                "message": f"{message['method']} outside a call is not relayed",
            }
            await self.respond(message["id"], {"error": error})


class Leases:
    """The sessions a backend lends beyond its shared one: HTTP variants or stdio children."""

    def __init__(self, variants: Variants | None, children: Children | None) -> None:
        self.variants, self.children = variants, children

    @staticmethod
    def shared_serves(shared: UpstreamSession, client: Client | None) -> bool:
        """Whether the shared session serves `client` (no session or child of its own): every
        2026-07-28 backend, and every client a legacy backend need not see as it is."""
        return client is None or shared.era == MODERN or not client.tailored

    @contextlib.asynccontextmanager
    async def lease(
        self, backend: Lender, shared: UpstreamSession, client: Client | None
    ) -> AsyncIterator[Lease]:
        if client is None or self.shared_serves(shared, client):
            yield Lease(backend, shared, "shared")
        elif self.children is not None and (
            client.session_id is not None or "roots" not in client.capabilities
        ):
            spec = ChildSpec(client.session_id or "", client.capabilities, client.outside)
            async with self.children.lease(spec) as child:
                # None: no child could be had; the main child serves, and the relay refuses on
                # the client's behalf what it did not declare.
                yield (
                    Lease(backend, child, "child") if child is not None else Lease(backend, shared, "shared")
                )
        elif self.variants is not None and client.session_id is not None and client.outside is not None:
            try:
                own = await self.variants.get(client.session_id, client.capabilities, client.outside)
            except (BackendError, SessionExpired, OSError, TimeoutError) as exc:
                reason = exc.message if isinstance(exc, BackendError) else str(exc) or type(exc).__name__
                raise BackendUnavailable(
                    backend.server, f"cannot open a session for this client: {reason}"
                ) from None
            yield Lease(backend, own, "variant")
        else:
            yield Lease(backend, shared, "shared")

    def attach(self, tg: TaskGroup) -> None:
        """The backend's connection (re)started: lent sessions run in its task group from now on."""
        if self.variants is not None:
            self.variants.attach(tg)
        if self.children is not None:
            self.children.attach(tg)

    async def forget(self, session_id: str) -> None:
        """A client's session ended: its own sessions and children stop."""
        if self.variants is not None:
            await self.variants.drop(session_id)
        if self.children is not None:
            await self.children.forget(session_id)

    async def close_all(self) -> None:
        """The backend's connection ended: every lent session goes with it."""
        if self.variants is not None:
            await self.variants.drop_all()
        if self.children is not None:
            await self.children.close_all()
