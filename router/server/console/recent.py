"""The last calls, for the console: an audit sink that keeps the newest records in memory.

It is one more sink of the `AuditLog`, added only when audit is on (`audit_sink` set), so the
console costs the call path nothing when it is off: the records are the ones the audit stream
gets anyway, kept as the bytes it already made and decoded only when a page is drawn.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson

KEPT = 50


class RecentCalls:
    name = "console"

    def __init__(self, size: int = KEPT) -> None:
        self._lines: deque[bytes] = deque(maxlen=size)

    async def write(self, lines: list[bytes]) -> None:
        self._lines.extend(lines)

    def newest(self, count: int = KEPT) -> list[dict[str, Any]]:
        """Up to `count` records, newest first."""
        lines = list(self._lines)[-count:]
        return [orjson.loads(line) for line in reversed(lines)]
