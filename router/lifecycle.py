"""One lifecycle for every background service: an async context manager.

`async with service:` starts what the service runs in the background, in a task group it owns,
and leaving the block stops it (anyio's `AsyncResource` shape). The runtime enters every service
on one `AsyncExitStack` (`router/runtime.py`), so what started last stops first, by construction.

Why a context manager and not `run(*, task_status)` started with `tg.start`: stopping is often
more than cancelling tasks (the NATS link drains its connection, the pool stops its children),
and `__aexit__` gives that one place that runs in order; a `run` task is only cancelled, all at
once with its siblings. `Task` turns a plain coroutine function (a sweep loop, a watch) into a
service, so the runtime does not need a second shape for the simple ones.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup


class Service:
    """A background service: subclasses write `start`, and `stop` if leaving needs more than
    cancelling the tasks `start` began."""

    _stack: AsyncExitStack | None = None

    async def start(self, tg: TaskGroup) -> None:
        """Begin the background tasks in `tg`; await here what must be ready before serving."""

    async def stop(self) -> None:
        """Release what the tasks held; runs after they were cancelled, shielded."""

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self._stop_shielded)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            await self.start(tg)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(exc_type, exc, tb)

    async def _stop_shielded(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.stop()


class Task(Service):
    """A coroutine function run for as long as the service is entered.

    With `started=True` it takes `task_status` and entering waits until it reports started."""

    def __init__(
        self, run: Callable[..., Coroutine[Any, Any, Any]], *args: Any, started: bool = False
    ) -> None:
        self.run = run
        self.args = args
        self.started = started

    async def start(self, tg: TaskGroup) -> None:
        if self.started:
            await tg.start(self.run, *self.args)
        else:
            tg.start_soon(self.run, *self.args)

    def __repr__(self) -> str:
        return f"Task({getattr(self.run, '__qualname__', self.run)!r})"
