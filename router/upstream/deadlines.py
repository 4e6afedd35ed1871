"""Request timeouts enforced by one coarse timer instead of a timer per request.

`anyio.fail_after` schedules and cancels an event-loop timer for every call, which costs about
three times a plain cancel scope; on the `tools/call` path that was the single largest piece of
timeout bookkeeping. Backend requests only need their timeout to hold to within a few
milliseconds, so each one registers a plain cancel scope with its deadline here, and one timer,
armed only while requests are in flight, cancels the scopes whose deadline has passed every
`RESOLUTION` seconds. A timeout therefore fires between `timeout` and `timeout + RESOLUTION`.
"""

from __future__ import annotations

import asyncio
import time

import anyio

RESOLUTION = 0.01  # seconds


class Deadlines:
    """Cancel scopes with their deadlines (monotonic), for one event loop."""

    __slots__ = ("_loop", "_scope_class", "_scopes", "_timer")

    def __init__(self) -> None:
        self._scope_class: type[anyio.CancelScope] | None = None
        self._scopes: dict[anyio.CancelScope, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def new_scope(self) -> anyio.CancelScope:
        """A new `anyio.CancelScope`, made by the running backend's own class.

        `anyio.CancelScope()` asks which async library runs (sniffio) and dispatches to the
        backend's factory on every construction, and Python then runs the backend scope's
        `__init__` a second time on the object the factory returned; the request path makes two
        scopes per call, so the class is looked up once and called directly (the same object,
        built once)."""
        if self._scope_class is None:
            self._scope_class = type(anyio.CancelScope())
        return self._scope_class()

    def scope(self, timeout: float) -> anyio.CancelScope:
        """A cancel scope that is cancelled once `timeout` seconds have passed; hand it back
        with `release` when the work is over (`cancelled_caught` then says whether it timed out)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new loop (tests run one per test)
            self._loop, self._timer = loop, None
            self._scopes.clear()
        scope = self.new_scope()
        self._scopes[scope] = time.monotonic() + timeout
        if self._timer is None:
            self._timer = loop.call_later(RESOLUTION, self._tick)
        return scope

    def release(self, scope: anyio.CancelScope) -> None:
        self._scopes.pop(scope, None)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        expired = [scope for scope, deadline in self._scopes.items() if deadline <= now]
        for scope in expired:
            del self._scopes[scope]
            scope.cancel()
        if self._scopes and self._loop is not None and not self._loop.is_closed():
            self._timer = self._loop.call_later(RESOLUTION, self._tick)


deadlines = Deadlines()
cancel_scope = deadlines.new_scope
