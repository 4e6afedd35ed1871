"""Output limits: how large a tool's result may be before it reaches the model.

One huge tool result fills a model's context, so every `tools/call` result is measured (its
JSON, as the router will send it) against a limit: the tool's own (`tools.<name>` in the
catalog entry), else the server's, else the router's default (`max_result_bytes`, on by
default). A limit may be given in bytes and/or estimated tokens; a token is estimated as four
bytes of JSON, so `max_result_tokens: N` is `N * 4` bytes and the smaller of the two holds.

Over the limit, the result is either:
- `truncate` (the default): text content is cut where the limit falls and a text item saying
  so is appended ("[toolmesh: result cut ...]") so the model knows it did not see everything;
  content items after the cut (images, resources, more text) are left out and counted in that
  marker; or
- `refuse`: the call fails with `ResultTooLarge` (-32006), naming the limit, the server and the
  tool.

A result with `structuredContent` is never cut: its schema is a promise to the client that a
cut would silently break, so over the limit it is refused in either mode. Measuring is one
`orjson.dumps` of the result, and that JSON is what the reply sends (`CallContext.result_json`):
a result is encoded once per call, not once to measure and again to answer. Its size is kept
on the `CallContext` for the usage record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from router.catalog.server_rules import Cost, OverLimit, ServerPolicy
from router.errors import ResultTooLarge
from router.nesting import to_json

BYTES_PER_TOKEN = 4
MARKER_RESERVE = 400  # bytes kept free for the marker item when a result is cut


@dataclass(frozen=True, slots=True)
class Limit:
    """The limit in force for one tool: `bytes` (0: none), what happens over it, and how it was
    set (for the marker and the error: "max_result_bytes=262144", "max_result_tokens=1000");
    and, worked out with it once per (policy, tool), the tool's `cost` for usage metering (the
    tool's own, else the server's; None: the call costs nothing)."""

    bytes: int
    mode: OverLimit
    setting: str
    cost: Cost | None = None


class OutputLimits:
    """The router's default limit, refined per server and tool by the catalog entry's policy."""

    MEMO_SIZE = 4096  # (policy, tool) pairs remembered; past it the memo starts again

    def __init__(self, max_bytes: int, mode: Literal["truncate", "refuse"] = "truncate") -> None:
        self.default = Limit(max_bytes, mode, f"max_result_bytes={max_bytes}")
        # Policies are frozen and replaced whole when the catalog changes, so a tool's limit under
        # one policy object is worked out once; an entry holds its policy, so the id it is filed
        # under cannot be reused by another object while the entry exists.
        self._memo: dict[tuple[int, str], tuple[ServerPolicy, Limit]] = {}

    def limit_for(self, policy: ServerPolicy | None, tool: str) -> Limit:
        if policy is None:
            return self.default
        key = (id(policy), tool)
        known = self._memo.get(key)
        if known is not None and known[0] is policy:
            return known[1]
        if len(self._memo) >= self.MEMO_SIZE:
            self._memo.clear()
        limit = self._resolve(policy, tool)
        own = policy.tool(tool)
        cost = own.cost if own is not None and own.cost is not None else policy.cost
        if cost is not None:
            limit = replace(limit, cost=cost)
        self._memo[key] = (policy, limit)
        return limit

    def _resolve(self, policy: ServerPolicy, tool: str) -> Limit:
        own = policy.tool(tool)
        size, tokens, mode = policy.max_result_bytes, policy.max_result_tokens, policy.over_limit
        if own is not None and (own.max_result_bytes is not None or own.max_result_tokens is not None):
            size, tokens = own.max_result_bytes, own.max_result_tokens
        if own is not None and own.over_limit is not None:
            mode = own.over_limit
        mode = mode or self.default.mode
        if size is None and tokens is None:
            return (
                self.default
                if mode == self.default.mode
                else Limit(self.default.bytes, mode, self.default.setting)
            )
        candidates = []
        if size is not None:
            candidates.append((size, f"max_result_bytes={size}"))
        if tokens is not None:
            candidates.append((tokens * BYTES_PER_TOKEN, f"max_result_tokens={tokens}"))
        limited = [c for c in candidates if c[0] > 0]
        if not limited:
            return Limit(0, mode, "no limit")
        chosen = min(limited)
        return Limit(chosen[0], mode, chosen[1])


def enforce(result: dict[str, Any], limit: Limit, server: str, tool: str) -> tuple[dict[str, Any], bytes]:
    """The result as it may be sent, and its JSON (`orjson.dumps`, what the reply sends: the
    reply reuses it instead of encoding the result again); raises ResultTooLarge to refuse, or
    Unencodable for a result nested past what the router can encode."""
    encoded = to_json(result, f"the result of tool '{tool}' on server '{server}'")
    size = len(encoded)
    if limit.bytes <= 0 or size <= limit.bytes:
        return result, encoded
    content = result.get("content")
    if limit.mode == "refuse" or "structuredContent" in result or not isinstance(content, list):
        why = " (structured content is never cut)" if "structuredContent" in result else ""
        raise ResultTooLarge(server, tool, limit.setting, size, limit.bytes, why)
    cut = _cut(result, content, limit, size, server, tool)
    encoded = orjson.dumps(cut)
    if len(encoded) > limit.bytes:  # what is over the limit is not the content: nothing to cut
        raise ResultTooLarge(server, tool, limit.setting, size, limit.bytes, "")
    return cut, encoded


def _cut(
    result: dict[str, Any], content: list[Any], limit: Limit, size: int, server: str, tool: str
) -> dict[str, Any]:
    rest = {**result, "content": []}
    budget = limit.bytes - len(orjson.dumps(rest)) - MARKER_RESERVE
    kept: list[Any] = []
    for n, item in enumerate(content):
        item_size = len(orjson.dumps(item)) + 1  # and its comma
        if item_size <= budget:
            kept.append(item)
            budget -= item_size
            continue
        piece = None
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            piece = _cut_text(item, budget)
        if piece is not None:
            kept.append(piece)
        left_out = len(content) - n - (1 if piece is not None else 0)
        break
    else:  # pragma: no cover - only reached if the content alone fits, which enforce ruled out
        left_out = 0
    note = (
        f"[toolmesh: result cut to {limit.bytes} of {size} bytes by the output limit of tool "
        f"'{tool}' on server '{server}' ({limit.setting})"
    )
    if left_out:
        note += f"; {left_out} more content item{'s' if left_out != 1 else ''} left out"
    kept.append({"type": "text", "text": note + "]"})
    return {**result, "content": kept}


def _cut_text(item: dict[str, Any], budget: int) -> dict[str, Any] | None:
    """The text item shortened so that its JSON fits `budget` bytes, or None if nothing fits.

    Escaping can make the JSON longer than the UTF-8 text, so the cut is shrunk until it fits
    (rarely more than twice); a multi-byte character is never split."""
    text: str = item["text"]
    overhead = len(orjson.dumps({**item, "text": ""})) + 1
    room = budget - overhead
    if room <= 0:
        return None
    raw = text.encode()[:room]
    while room > 0:
        piece = {**item, "text": raw[:room].decode(errors="ignore")}
        over = len(orjson.dumps(piece)) + 1 - budget
        if over <= 0:
            return piece
        room -= max(over, 16)
    return None
