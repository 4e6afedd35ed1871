"""2026-07-28 listen streams (`subscriptions/listen`) this replica holds, and what each asked for.

The legacy counterpart is the session's GET stream, reached through the `ClientBus`; a listen
stream has no session, so each replica keeps its own and the router publishes every fan-out
event (list_changed, resources/updated) to both: `ClientBus.broadcast` and `ListenStreams.publish`.
Every replica sees the same backend news, and each stream is held by one replica, so each
listener hears it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from router.state.bus import MayRead, Reader

Message = dict[str, Any]
LISTEN_BUFFER = 256

# notification method -> the subscriptions/listen filter flag that opts in to it
FILTER_FLAG = {
    "notifications/tools/list_changed": "toolsListChanged",
    "notifications/prompts/list_changed": "promptsListChanged",
    "notifications/resources/list_changed": "resourcesListChanged",
}
RESOURCE_UPDATED = "notifications/resources/updated"


@dataclass(slots=True)
class Interest:
    """What one 2026-07-28 listen stream opted in to."""

    flags: frozenset[str] = frozenset()
    uris: frozenset[str] = frozenset()

    @classmethod
    def from_filter(cls, notifications: Any) -> Interest:
        if not isinstance(notifications, dict):
            return cls()
        flags = frozenset(flag for flag in FILTER_FLAG.values() if notifications.get(flag) is True)
        uris = notifications.get("resourceSubscriptions")
        return cls(
            flags, frozenset(u for u in uris if isinstance(u, str)) if isinstance(uris, list) else frozenset()
        )

    def honored(self) -> dict[str, Any]:
        """The filter echoed in the acknowledgement: what will be delivered."""
        out: dict[str, Any] = {flag: True for flag in sorted(self.flags)}
        if self.uris:
            out["resourceSubscriptions"] = sorted(self.uris)
        return out

    def wants(self, message: Message) -> bool:
        method = message.get("method")
        if method == RESOURCE_UPDATED:
            return (message.get("params") or {}).get("uri") in self.uris
        flag = FILTER_FLAG.get(method)  # type: ignore[arg-type]
        return flag is not None and flag in self.flags


@dataclass(slots=True, eq=False)
class Listener:
    interest: Interest
    outbox: MemoryObjectSendStream[Message]
    inbox: MemoryObjectReceiveStream[Message]
    # The agent (id, groups) listening, its namespace and tools mode, for `MayRead`: a policy may
    # narrow after the stream opened, and a namespace or a search-mode client hears only its own
    # changes.
    reader: Reader
    dropped: bool = field(default=False)


class ListenStreams:
    """The listen streams of this replica."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()

    def publish(self, message: Message, may_read: MayRead | None = None) -> int:
        """Hand a fan-out event to every stream that asked for it (and, given `may_read`, whose
        agent may still read what it is about); how many took it."""
        taken = 0
        for listener in list(self._listeners):
            if listener.interest.wants(message) and (may_read is None or may_read(*listener.reader)):
                try:
                    listener.outbox.send_nowait(message)
                    taken += 1
                except anyio.WouldBlock:  # a client that stopped reading: end its stream
                    listener.dropped = True
                    self.close(listener)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self.close(listener)
        return taken

    def listen(self, interest: Interest, reader: Reader) -> Listener:
        outbox, inbox = anyio.create_memory_object_stream[Message](LISTEN_BUFFER)
        listener = Listener(interest, outbox, inbox, reader)
        self._listeners.add(listener)
        return listener

    def close(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        listener.outbox.close()

    def interests(self) -> set[str]:
        """Every resource URI a stream here asked to hear about."""
        uris: set[str] = set()
        for listener in self._listeners:
            uris.update(listener.interest.uris)
        return uris
