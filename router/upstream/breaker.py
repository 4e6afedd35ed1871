"""A circuit breaker per backend instance, and how its transitions leave the process.

pybreaker counts failures and moves between closed, open and half-open; this module adds what it
lacks under asyncio:

- a single-trial gate: in half-open exactly one call goes through, the others fail fast as if
  the breaker were still open (pybreaker lets every concurrent caller in);
- cancellation is not a failure (a client hanging up says nothing about the backend), while the
  request timeout, applied inside the guarded block, is;
- a fast, allocation-free `available()` for the balancer and an error that says when the next
  trial will be made.

Transitions go to a `BreakerBoard`: metrics and the cluster-wide hint publisher listen there.
A hint from another replica never opens our breaker (each replica judges for itself, as Envoy's
outlier detection does); it only makes the balancer prefer other instances until it expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Literal, Protocol

import anyio
import pybreaker

from router.errors import BackendBusy, CircuitOpen
from router.nesting import Unencodable

log = logging.getLogger("toolmesh.upstream")

BreakerState = Literal["closed", "open", "half-open"]
Transition = Callable[[str, str, BreakerState, float], None]


class HintBus(Protocol):
    """Where breaker transitions are published for other replicas (NATS), and heard from them."""

    def publish(self, server: str, instance: str, state: BreakerState, retry_in: float) -> None: ...

    def subscribe(self, callback: Transition) -> None: ...


class LocalHints:
    """The default bus: in-process only (a single replica, or NATS not wired)."""

    def __init__(self) -> None:
        self._callbacks: list[Transition] = []

    def publish(self, server: str, instance: str, state: BreakerState, retry_in: float) -> None:
        """Nothing leaves the process; local subscribers already learnt it from the board."""

    def subscribe(self, callback: Transition) -> None:
        self._callbacks.append(callback)


class BreakerBoard:
    """Fan-out of every local transition to listeners (metrics, logs, the hint bus)."""

    def __init__(self, hints: HintBus | None = None, listeners: Sequence[Transition] = ()) -> None:
        """`hints` carries transitions to and from other replicas; `listeners` hear local ones."""
        self.listeners: list[Transition] = list(listeners)
        self.remote_open: dict[tuple[str, str], float] = {}  # (server, instance) -> monotonic until
        self.hints = hints or LocalHints()
        self.hints.subscribe(self._on_hint)

    def transition(self, server: str, instance: str, state: BreakerState, retry_in: float) -> None:
        log.warning(
            "circuit breaker " + state,
            extra={"server": server, "instance": instance, "retry_in": round(retry_in, 3)},
        )
        for listener in self.listeners:
            listener(server, instance, state, retry_in)
        try:
            self.hints.publish(server, instance, state, retry_in)
        except Exception:  # a hint is best effort; never fail a call over it
            log.exception("breaker hint not published")

    def _on_hint(self, server: str, instance: str, state: BreakerState, retry_in: float) -> None:
        key = (server, instance)
        if state == "open":
            self.remote_open[key] = time.monotonic() + retry_in
        else:
            self.remote_open.pop(key, None)

    def hinted_open(self, server: str, instance: str) -> bool:
        until = self.remote_open.get((server, instance))
        return until is not None and until > time.monotonic()


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: InstanceBreaker) -> None:
        self.owner = owner

    def state_change(self, cb: object, old: object, new: pybreaker.CircuitBreakerState) -> None:
        self.owner._changed(new.name)


class _ClosedGuard:
    """The guard of a closed breaker with no failures counted: nothing to do unless one fails."""

    __slots__ = ("_breaker",)

    def __init__(self, breaker: InstanceBreaker) -> None:
        self._breaker = breaker

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        if exc is not None:
            self._breaker.record_failure(exc)
        return False


class InstanceBreaker:
    """pybreaker for one instance, with a single trial in half-open and a clear open error."""

    def __init__(
        self, server: str, instance: str, board: BreakerBoard, *, fail_max: int, reset_timeout: float
    ) -> None:
        self.server, self.instance, self.board = server, instance, board
        self.reset_timeout = reset_timeout
        self.state: BreakerState = "closed"
        self.opened_at = 0.0
        self._trial = False
        self._closed = _ClosedGuard(self)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            exclude=[anyio.get_cancelled_exc_class(), BackendBusy, Unencodable],
            listeners=[_Listener(self)],
            throw_new_error_on_trip=False,
            name=f"{server}/{instance}",
        )

    def retry_in(self) -> float:
        return max(0.0, self.opened_at + self.reset_timeout - time.monotonic())

    def wait_hint(self) -> float:
        """Seconds a caller should wait: until the trial is due, or a full period if one is running."""
        return self.retry_in() or self.reset_timeout

    def available(self) -> bool:
        """Would a call be let through now (closed, or a trial is due and none is running)?"""
        if self.state == "closed":
            return True
        if self._trial:
            return False
        return self.state == "half-open" or self.retry_in() <= 0

    def guard(self) -> AbstractContextManager[None]:
        """Run the block under the breaker; raise CircuitOpen at once if it may not run.

        While the breaker is closed and counts no failures, a success changes nothing in
        pybreaker, so the block runs under `_closed` and only a failure goes to pybreaker
        (through `calling()`, which counts it and may trip). Everything else takes `_guarded`."""
        if self.state == "closed" and self._breaker.fail_counter == 0:
            return self._closed
        return self._guarded()

    def record_failure(self, exc: BaseException) -> None:
        """Let pybreaker judge a failure of a block run under `_closed` (it may trip)."""
        try:
            with self._breaker.calling():
                raise exc
        except BaseException:  # the caller re-raises the original
            pass

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        trial = False
        if self.state != "closed":
            if self._trial or (self.state == "open" and self.retry_in() > 0):
                raise CircuitOpen(self.server, self.wait_hint())
            self._trial = trial = True
        try:
            with self._breaker.calling():
                yield
        except pybreaker.CircuitBreakerError:  # its clock disagreed with ours by a hair
            raise CircuitOpen(self.server, self.retry_in() or 0.001) from None
        finally:
            if trial:
                self._trial = False

    def _changed(self, state: str) -> None:
        new: BreakerState = "open" if state == "open" else "half-open" if state == "half-open" else "closed"
        self.state = new
        if new == "open":
            self.opened_at = time.monotonic()
        self.board.transition(self.server, self.instance, new, self.retry_in() if new == "open" else 0.0)
