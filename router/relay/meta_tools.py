"""Search mode: `tools/list` as three meta-tools plus the pinned tools (docs/tool-search.md).

Which mode a request is served in: the client's URL parameter (`/mcp?tools=search`), else the
view's `tools_mode` (a namespace's own, else the agent's policy: its own entry, then its groups',
then `everyone`'s), else the router's setting. `auto` searches once the agent's visible tools pass a count or an estimated
token size (characters / 4 of the flat list), and lists them all below it.

In search mode the list is `search_tools`, `describe_tools` and `call_tool`, then the visible
tools that are pinned (by the settings' or the policy's globs, or by their own
`_meta["anthropic/alwaysLoad"]: true`), serialized once per view and catalog generation: the
same bytes while the pins do not change, so a client's prompt cache survives catalog changes.

The meta-tools see exactly the agent's View: search statistics are over its visible tools only
(`catalog/search/live.py`), and describe/call of a hidden name fail as an unknown name does.
`call_tool` is the dispatcher's own `tools/call` with the real name, so policy, rate limits,
balancing, breakers, retries, relayed progress and questions, audit and metrics are the same.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from router.catalog.index import Index, Target
from router.catalog.search.index import DocKey
from router.catalog.search.live import Found, LiveSearch, Shown
from router.errors import INVALID_PARAMS, RPCError
from router.guard.policy_document import ToolsMode
from router.guard.views import View
from router.relay.context import CallContext, Result

MODES: tuple[ToolsMode, ...] = ("all", "search", "auto")
SEARCH, DESCRIBE, CALL = "search_tools", "describe_tools", "call_tool"
META_NAMES = frozenset({SEARCH, DESCRIBE, CALL})
ALWAYS_LOAD = "anthropic/alwaysLoad"
MAX_LIMIT = 50
MAX_QUERY_CHARS = 1000
"""A task in a sentence or two is far shorter. Ranking costs grow with the query's words (1,000
characters of prose: ~15 ms at 5,000 tools, on the event loop); a megabyte would hold it for
seconds."""
DESCRIPTION_CHARS = 300  # of each hit; describe_tools gives the whole definition
CACHED = 1024  # search-mode lists and auto-mode sizes kept, by (view, catalog generation)

CallTool = Callable[[CallContext, dict[str, Any]], Awaitable[Result]]

META_TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": SEARCH,
        "description": (
            "Find tools by what you want to do. Say it in a few words: the action, the thing it acts "
            "on, and the product if the user named one ('create calendar event', 'Jira issue "
            "comments', 'convert currency'); ids, values and message text are not needed. Returns "
            "the best matches, best first, with the name to pass to call_tool; the first ones "
            "include their input schema."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "maxLength": MAX_QUERY_CHARS,
                    "description": "What the tool should do, in a few words (any language).",
                },
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 5},
                "server": {"type": "string", "description": "Only tools of this server."},
            },
            "required": ["query"],
        },
    },
    {
        "name": DESCRIBE,
        "description": "Full definitions (input schema, annotations, title) of tools named by search_tools.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "names": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_LIMIT}
            },
            "required": ["names"],
        },
    },
    {
        "name": CALL,
        "description": "Call a tool found with search_tools, by its name, with its arguments.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "arguments": {"type": "object", "additionalProperties": True},
            },
            "required": ["name"],
        },
    },
)


def tools_mode_of(query_string: bytes) -> ToolsMode | None:
    """The `tools` parameter of an endpoint URL's query; ValueError for a value not a mode."""
    if b"tools=" not in query_string:
        return None
    for part in query_string.decode("latin-1").split("&"):
        key, _, value = part.partition("=")
        if key == "tools":
            if value not in MODES:
                raise ValueError(f"tools={value!r} is not a tools mode; use one of {', '.join(MODES)}")
            return value
    return None


def unknown_tool(name: Any, visible: dict[str, Target]) -> RPCError:
    """The error for a tool name that is unknown or hidden (alike): suggestions only from `visible`."""
    if not isinstance(name, str):
        return RPCError(INVALID_PARAMS, "`name` of the tool must be a string")
    close = difflib.get_close_matches(name, list(visible), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return RPCError(INVALID_PARAMS, f"Unknown tool: {name!r}{hint}", {"name": name, "suggestions": close})


@dataclass(frozen=True, slots=True)
class ToolsSettings:
    mode: ToolsMode = "all"
    auto_max_count: int = 40
    auto_max_tokens: int = 10_000
    pinned: tuple[str, ...] = ()
    inline_schemas: int = 3


class ToolSearch:
    """Modes, the search-mode list, and the three meta-tools, over one live search index."""

    def __init__(
        self,
        settings: ToolsSettings,
        serving: Callable[[str], bool],
        live: LiveSearch | None = None,
    ) -> None:
        """`serving(server)`: whether some instance of the server can take a call now."""
        self.settings = settings
        self.serving = serving
        self.live = live if live is not None else LiveSearch()
        self._lists: OrderedDict[tuple[Hashable, int], tuple[Index, bytes]] = OrderedDict()
        self._sizes: OrderedDict[tuple[Hashable, int], tuple[Index, int, int]] = OrderedDict()
        self._inverses: OrderedDict[
            tuple[Hashable, int], tuple[Index, dict[DocKey, str], dict[str, DocKey]]
        ] = OrderedDict()
        self._pins: dict[tuple[str, ...], re.Pattern[str] | None] = {}

    # -- modes ----------------------------------------------------------------------------------

    def mode(self, client: str | None, view: View) -> ToolsMode:
        """The mode asked for: the client's URL parameter, the agent's policy, the setting."""
        if client in MODES:
            return client
        return view.tools_mode or self.settings.mode

    def searching(self, client: str | None, view: View, index: Index) -> bool:
        mode = self.mode(client, view)
        if mode != "auto":
            return mode == "search"
        count, chars = self._size(view, index)
        s = self.settings
        return count > s.auto_max_count or chars / 4 > s.auto_max_tokens

    def _size(self, view: View, index: Index) -> tuple[int, int]:
        """(visible tools, bytes of their flat list), once per view and catalog."""
        key = (view.key, index.generation)
        cached = self._sizes.get(key)
        if cached is not None and cached[0] is index:
            return cached[1], cached[2]
        size = (len(view.visible(index, "tools")), sum(map(len, view.pages(index, "tools", 0))))
        _remember(self._sizes, key, (index, *size))
        return size

    # -- the search-mode list -------------------------------------------------------------------

    def listed(self, client: str | None, view: View, index: Index) -> bytes | None:
        """The tools/list page (a JSON array) in search mode; None when all tools are listed."""
        if not self.searching(client, view, index):
            return None
        key = (view.key, index.generation)
        cached = self._lists.get(key)
        if cached is not None and cached[0] is index:
            return cached[1]
        pins = self._pin_pattern(view.pinned)
        listed = [item for page in view.pages(index, "tools", 0) for item in orjson.loads(page)]
        pinned = [
            item  # as the agent sees it (overrides applied)
            for item in listed
            if (_always_load(item) or (pins is not None and pins.match(str(item["name"]))))
            and item["name"] not in META_NAMES
        ]
        page = orjson.dumps([*META_TOOLS, *pinned])
        _remember(self._lists, key, (index, page))
        return page

    def _pin_pattern(self, policy_pins: tuple[str, ...]) -> re.Pattern[str] | None:
        globs = tuple(sorted({*self.settings.pinned, *policy_pins}))
        if globs not in self._pins:
            self._pins[globs] = (
                re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)) if globs else None
            )
        return self._pins[globs]

    def _shown(self, view: View) -> Shown | None:
        """The name `view`'s agent sees each tool under (None: hidden), decided against the index
        the live search follows at the time it is asked (the ranker asks again as servers
        register, under the view's key)."""
        if view.open:
            return None
        live = self.live
        if not view.overrides:

            def allowed(key: DocKey) -> str | None:
                name = live.exposed(key)
                return name if name is not None and view.allows("tools", key[0], name) else None

            return allowed

        def renamed(key: DocKey) -> str | None:
            index = live.index
            return self._inverse(view, index).get(key) if index is not None else None

        return renamed

    def _inverse(self, view: View, index: Index) -> dict[DocKey, str]:
        """(server, backend name) -> the name the agent sees, where overrides rename tools."""
        return self._names(view, index)[1]

    def _renamed(self, view: View, index: Index) -> dict[str, DocKey] | None:
        """The names `view`'s agent sees that are not the tools' exposed names, folded to lower
        case -> the tool: what a spelled-out name may also be (None without overrides)."""
        return self._names(view, index)[2] if view.overrides else None

    def _names(self, view: View, index: Index) -> tuple[Index, dict[DocKey, str], dict[str, DocKey]]:
        key = (view.key, index.generation)
        cached = self._inverses.get(key)
        if cached is None or cached[0] is not index:
            table = {(t.server, t.name): name for name, t in view.visible(index, "tools").items()}
            renamed = {name.lower(): k for k, name in table.items() if name != self.live.exposed(k)}
            cached = (index, table, renamed)
            _remember(self._inverses, key, cached)
        return cached

    # -- searching ------------------------------------------------------------------------------

    async def find(
        self, view: View, index: Index, query: str, limit: int, server: str | None = None
    ) -> dict[str, Any]:
        """`search`, with the query's vector by meaning when `tools_semantic` is on (made on a
        worker thread: a few milliseconds of CPU that must not hold the event loop)."""
        meanings = self.live.meanings
        meaning = await anyio.to_thread.run_sync(meanings.embed, query) if meanings is not None else None
        return self.search(view, index, query, limit, server, meaning)

    def search(
        self,
        view: View,
        index: Index,
        query: str,
        limit: int,
        server: str | None = None,
        meaning: Any = None,
    ) -> dict[str, Any]:
        """`{"tools": [...]}` best first; tools that cannot be called now come after the others
        (`"available": false`). The same JSON as search_tools' structuredContent. `meaning`: the
        query's vector (see `find`), or None to rank by words."""
        self.live.follow(index)  # the renamed names are checked against the index searched
        shown = self._shown(view)
        names = self._renamed(view, index)
        # the first `limit` hits are those of a longer search (the ranker guarantees it); only
        # when one of them cannot be called now do the 50 best decide what moves up past it
        found = self.live.search(index, query, limit, shown, view.key, server, meaning, names)
        up = {srv: self.serving(srv) for srv in {f.target.server for f in found}}
        if not all(up.values()) and limit < MAX_LIMIT:
            found = self.live.search(index, query, MAX_LIMIT, shown, view.key, server, meaning, names)
            up = {srv: self.serving(srv) for srv in {f.target.server for f in found}}
        ordered = sorted(found, key=lambda f: not up[f.target.server])[:limit]  # stable
        rows = []
        for i, hit in enumerate(ordered):
            rows.append(self._row(view, hit, i < self.settings.inline_schemas, up[hit.target.server]))
        return {"tools": rows}

    def _row(self, view: View, hit: Found, inline: bool, available: bool) -> dict[str, Any]:
        item = view.present_tool(hit.item)  # with the overrides that apply to the agent
        description = " ".join(str(item.get("description") or "").split())
        if len(description) > DESCRIPTION_CHARS:
            description = description[: DESCRIPTION_CHARS - 3] + "..."
        row: dict[str, Any] = {
            "name": hit.name,
            "server": hit.target.server,
            "tool": hit.target.name,
            "description": description,
            "score": round(hit.score, 4),
        }
        if inline and "inputSchema" in item:
            row["inputSchema"] = item["inputSchema"]
        if not available:
            row["available"] = False
        return row

    # -- the meta-tools -------------------------------------------------------------------------

    async def call(
        self, ctx: CallContext, index: Index, params: dict[str, Any], call_tool: CallTool
    ) -> Result:
        """A tools/call of a meta-tool (the caller checked the request is in search mode)."""
        name = params["name"]
        arguments = params.get("arguments") or {}  # an object or absent: dispatch checked it
        if name == CALL:
            real = arguments.get("name")
            if real in META_NAMES or not isinstance(real, str):
                raise unknown_tool(real, ctx.view.visible(index, "tools"))
            inner = arguments.get("arguments")
            if inner is not None and not isinstance(inner, dict):
                raise RPCError(INVALID_PARAMS, "`arguments` of call_tool's tool must be an object")
            ctx.arguments = inner or {}  # audited and metered as the real tool's call
            return await call_tool(ctx, {**params, "name": real, "arguments": ctx.arguments})
        ctx.target = name
        if name == SEARCH:
            return await self._search_result(ctx, index, arguments)
        return self._describe_result(ctx, index, arguments)

    async def _search_result(self, ctx: CallContext, index: Index, arguments: dict[str, Any]) -> Result:
        query, limit, server = arguments.get("query"), arguments.get("limit", 5), arguments.get("server")
        if not isinstance(query, str) or not query.strip():
            raise RPCError(INVALID_PARAMS, "search_tools needs `query`: the task in plain words")
        if len(query) > MAX_QUERY_CHARS:
            raise RPCError(INVALID_PARAMS, too_long(query))
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise RPCError(INVALID_PARAMS, f"`limit` must be an integer from 1 to {MAX_LIMIT}")
        if server is not None and not isinstance(server, str):
            raise RPCError(INVALID_PARAMS, "`server` must be a string")
        found = await self.find(ctx.view, index, query, limit, server)
        return {"content": [{"type": "text", "text": render(found["tools"])}], "structuredContent": found}

    def _describe_result(self, ctx: CallContext, index: Index, arguments: dict[str, Any]) -> Result:
        names = arguments.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RPCError(INVALID_PARAMS, "describe_tools needs `names`: a list of tool names (strings)")
        if len(names) > MAX_LIMIT:  # a search returns at most that many: more is no agent's need
            raise RPCError(
                INVALID_PARAMS, f"`names` holds {len(names)} names; describe at most {MAX_LIMIT} at once"
            )
        self.live.follow(index)
        visible = ctx.view.visible(index, "tools")  # under the names the agent sees
        tools = []
        for name in dict.fromkeys(names):  # each once, in the order asked
            target = visible.get(name)
            exposed = self.live.exposed((target.server, target.name)) if target is not None else None
            item = self.live.item(exposed) if exposed is not None else None
            if item is None:
                raise unknown_tool(name, visible)
            tools.append({**ctx.view.present_tool(item), "name": name})
        text = "\n".join(orjson.dumps(tool).decode() for tool in tools)
        return {"content": [{"type": "text", "text": text}], "structuredContent": {"tools": tools}}


def too_long(query: str) -> str:
    """What to tell a client whose query is over MAX_QUERY_CHARS."""
    return (
        f"`query` is {len(query)} characters, over the {MAX_QUERY_CHARS} a search takes: "
        "say the task in a sentence or two"
    )


def render(rows: list[dict[str, Any]]) -> str:
    """The compact text of a result page, for models that read only text content."""
    if not rows:
        return "No tools match. Try other words, or fewer of them."
    lines = []
    for i, row in enumerate(rows, 1):
        mark = " (unavailable)" if row.get("available") is False else ""
        lines.append(f"{i}. {row['name']}{mark}: {row['description']}")
        if "inputSchema" in row:
            lines.append(f"   arguments: {orjson.dumps(row['inputSchema']).decode()}")
    lines.append("Call one with call_tool {name, arguments}; describe_tools {names} gives full schemas.")
    return "\n".join(lines)


def _always_load(item: dict[str, Any]) -> bool:
    meta = item.get("_meta")
    return isinstance(meta, dict) and meta.get(ALWAYS_LOAD) is True


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > CACHED:
        cache.popitem(last=False)
