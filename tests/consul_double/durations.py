"""Go ``time.ParseDuration`` semantics, because Consul parses ``wait``, ``TTL`` and
``DeregisterCriticalServiceAfter`` with it: units are mandatory ("10s", "1m30s", "250ms"),
only a bare "0" may omit them, and a JSON number means nanoseconds."""

from __future__ import annotations

import re

_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both micro signs
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """The text is not a Go duration; the message mimics Go's ``time: invalid duration``."""


def parse_go_duration(text: str) -> float:
    """Return seconds for a Go duration string such as ``"1m30s"``; raise DurationError."""
    original = text
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise DurationError(f'time: invalid duration "{original}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            if re.match(r"(\d+(?:\.\d*)?|\.\d+)$", text[pos:]):
                raise DurationError(f'time: missing unit in duration "{original}"')
            raise DurationError(f'time: invalid duration "{original}"')
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return sign * total


def duration_field(value: object, field: str) -> float:
    """Decode a duration the way Consul's JSON decoder does: a string is a Go duration,
    a number is nanoseconds. Raises ValueError with a decode-style message otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: cannot decode a boolean as a duration")
    if isinstance(value, int | float):
        return float(value) / 1e9
    if isinstance(value, str):
        return parse_go_duration(value)
    raise ValueError(f"{field}: cannot decode {type(value).__name__} as a duration")
