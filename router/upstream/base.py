"""The seam toward backends: a Channel moves JSON-RPC messages to and from one instance.

A channel knows bytes and framing (HTTP POST/SSE, or lines on a child's pipes); it does not know
MCP eras, sessions or names. Every library error is translated here into BackendUnavailable,
BackendTimeout or SessionExpired (see router.errors), so the layers above handle three cases.

Messages a backend sends that are not the awaited response (progress, logs, server-to-client
requests) go to the `on_message` callback given with the request when they belong to it, and
to the channel's `on_unsolicited` callback otherwise (list_changed and the like).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from anyio.abc import TaskGroup

from router.errors import METHOD_NOT_FOUND

Message = dict[str, Any]
MessageHandler = Callable[[Message], Awaitable[None]]
# A client's answer to what a backend says on that client's own upstream session outside any call:
# a reply message for a request, None for a notification (delivered or dropped by the client's side).
Outside = Callable[[Message], Awaitable[Message | None]]


# What a client's own backend session (a stdio child, an HTTP variant) declares of its
# capabilities: the ones a legacy server tailors its offer to, each with only the flags the spec
# defines (their values reduced to `true`/`{}`). Anything else (experimental data, unknown keys)
# is left out, so clients that differ only in it share children (otherwise a client changing
# such data on every request started a process per request and pushed other clients' idle
# children out), and no client's private data reaches a backend in a session the router opens.
DECLARED: Mapping[str, frozenset[str]] = {
    "sampling": frozenset({"context", "tools"}),
    "elicitation": frozenset({"form", "url"}),
    "roots": frozenset({"listChanged"}),
}


def declared(capabilities: Mapping[str, Any]) -> dict[str, Any]:
    """The capabilities a client's own backend session declares for a client that declared
    `capabilities`."""
    kept: dict[str, Any] = {}
    for name, flags in DECLARED.items():
        value = capabilities.get(name)
        if isinstance(value, dict):
            kept[name] = {
                flag: (True if isinstance(setting, bool) else {})
                for flag, setting in value.items()
                if flag in flags and setting is not False and isinstance(setting, (bool, dict))
            }
    return kept


def refusal(method: str, problem: str) -> Message:
    """The answer the router gives, in the client's stead, to a backend's request no client can
    or may answer."""
    return {"error": {"code": METHOD_NOT_FOUND, "message": f"{method} refused by the router: {problem}"}}


def as_object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: a peer may send anything there."""
    return value if isinstance(value, dict) else {}


def error_of(reply: Message) -> dict[str, Any]:
    """A backend reply's error object; empty when there is none or it is not an object."""
    return as_object(reply.get("error"))


# Handed to a request's `on_message` when the backend closed the request's stream early (SSE
# polling) and the channel is about to resume it, so the router can do the same to its client.
STREAM_PAUSED = "toolmesh/stream-paused"


class Channel(Protocol):
    """A message pipe to one backend instance."""

    on_unsolicited: MessageHandler | None

    async def open(self, task_group: TaskGroup) -> None:
        """Connect or start the process; background readers run in `task_group`."""

    async def request(
        self, message: Message, headers: Mapping[str, str], on_message: MessageHandler | None = None
    ) -> Message:
        """Send a request; return its response message (result or error)."""
        ...

    async def notify(self, message: Message, headers: Mapping[str, str]) -> None:
        """Send a notification or a response to a backend's request."""

    async def listen(self, headers: Mapping[str, str]) -> None:
        """Receive messages the backend sends on its own, until the channel closes."""

    async def end_session(self, headers: Mapping[str, str]) -> None:
        """Tell the backend the session is over (HTTP DELETE); a no-op where meaningless."""

    async def close(self) -> None:
        """Release connections or stop the process; idempotent."""

    @property
    def alive(self) -> bool:
        """False once the process died or the channel was closed."""
        ...
