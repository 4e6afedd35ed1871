"""Server-Sent Events: a parser for responses we read and an encoder for streams we write."""

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
        elif field == "retry" and value.isdigit():
            retry = int(value)
    if data:
        yield Event("\n".join(data), event, event_id, retry)


def encode_event(data: bytes, event_id: str | None = None, retry_ms: int | None = None) -> bytes:
    """One `message` event; `data` must be a single line of JSON."""
    head = b""
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    if retry_ms is not None:
        head += b"retry: " + str(retry_ms).encode() + b"\n"
    return head + b"event: message\ndata: " + data + b"\n\n"
