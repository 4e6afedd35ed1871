"""Server-Sent Events: a parser for the streams backends send us."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


async def parse_events(lines: AsyncIterable[bytes]) -> AsyncIterator[Event]:
    """Turn a byte stream's lines into events (WHATWG rules: data lines joined, comments skipped)."""
    data: list[str] = []
    event, event_id, retry = "message", None, None
    async for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data or event_id is not None:
                yield Event("\n".join(data), event, event_id, retry)
            data, event, retry = [], "message", None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id":
            event_id = value
        elif field == "retry" and value.isascii() and value.isdigit() and len(value) <= 9:
            retry = int(value)  # anything else is ignored, as SSE says (`isdigit` alone takes "²")
    if data:
        yield Event("\n".join(data), event, event_id, retry)
