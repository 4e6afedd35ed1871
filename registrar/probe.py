"""Ask a server over MCP what it is: protocol eras, capabilities, serverInfo, definitions hash.

Each era is tried on a fresh connection (a server may speak both; a 2025 session and a
2026-07-28 request do not mix on one channel). The definitions are listed in full, following
cursors, over whichever era answered, and hashed in their canonical form
(`router.catalog.record.canonical_definitions`), so the same definitions always give the same
hash; the server's `instructions` count among them (see `canonical_definitions`). The
router's own upstream code does the talking: no SDK at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import anyio

from router.catalog.record import Transport, canonical_definitions, definitions_hash
from router.errors import BackendError, SessionExpired
from router.upstream.base import Channel
from router.upstream.http import HttpChannel
from router.upstream.listing import LISTS, list_all
from router.upstream.session import UpstreamSession
from router.upstream.sse_channel import SseChannel

KEYS = {"tools/list": "tools", "prompts/list": "prompts", "resources/list": "resources",
        "resources/templates/list": "resourceTemplates"}  # fmt: skip


class ProbeFailed(Exception):
    """The server did not answer the probe in either era; `str()` says why."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    eras: tuple[str, ...]
    capabilities: tuple[str, ...]
    server_info: tuple[tuple[str, str], ...]
    canonical: bytes
    digest: str


async def probe(server: str, url: str, timeout: float = 5.0, transport: Transport = "http") -> ProbeResult:
    """Probe `url`; raises ProbeFailed with the reason if no era answers. An HTTP+SSE server
    (`transport="sse"`) is asked in the legacy era only, which is all that transport carries."""
    eras: list[str] = []
    reasons: list[str] = []
    lists: dict[str, Any] | None = None
    capabilities: dict[str, Any] = {}
    info: dict[str, Any] = {}
    instructions: str | None = None
    protocols: tuple[Literal["2026-07-28", "legacy"], ...] = (
        ("legacy",) if transport == "sse" else ("2026-07-28", "legacy")
    )
    for protocol in protocols:
        async with anyio.create_task_group() as tg:
            channel: Channel = (
                SseChannel(server, url, {}, timeout)
                if transport == "sse"
                else HttpChannel(server, url, {}, timeout)
            )
            session = UpstreamSession(server, channel, protocol=protocol, connect_timeout=timeout)
            try:
                await channel.open(tg)
                await session.connect()
                eras.append(session.protocol_version)
                if lists is None:
                    capabilities, info = session.capabilities, session.server_info
                    instructions = session.instructions if isinstance(session.instructions, str) else None
                    lists = await _list_everything(session, timeout)
            except (BackendError, SessionExpired, TimeoutError, OSError) as exc:
                reasons.append(f"{protocol}: {getattr(exc, 'message', None) or exc or type(exc).__name__}")
            finally:
                with anyio.CancelScope(shield=True):
                    await session.close()
                    await channel.close()
    if lists is None:
        raise ProbeFailed("; ".join(reasons))
    canonical = canonical_definitions(lists, instructions)
    return ProbeResult(
        eras=tuple(sorted(eras)),
        capabilities=tuple(sorted(capabilities)),
        server_info=tuple((k, str(info[k])) for k in ("name", "version", "title") if info.get(k)),
        canonical=canonical,
        digest=definitions_hash(canonical),
    )


async def _list_everything(session: UpstreamSession, timeout: float) -> dict[str, Any]:
    lists: dict[str, Any] = {}
    for method, (capability, key, _) in LISTS.items():
        if capability in session.capabilities:
            lists[KEYS[method]] = (await list_all(session, method, key, timeout)).items
    return lists
