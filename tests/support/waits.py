"""Polling until something holds, for tests: `wait_until` (blocking) and `eventually` (async).
Processes are waited for by the supervisor (`router.up.processes`), not here."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what} (last: {value!r})")
        time.sleep(interval)


async def eventually(check: Callable[[], object], seconds: float = 10.0, what: str = "the condition") -> None:
    """Poll `check` (without blocking the loop) until it is truthy; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await anyio.sleep(0.05)
