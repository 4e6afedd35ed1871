"""`/console`: the operator's web console, for admin agents only (the `/admin/` rule: an
authenticated agent in one of `admin_groups`, never anonymous).

    GET  /console          the page (or a sign-in form: 401; not an admin: 403)
    GET  /console/live     the page's changing part, fetched every second by the page
    POST /console/login    form `key`: an API key (or JWT); sets the `toolmesh_console` cookie
    POST /console/logout   clears it
    POST /console/approve  form `server`, `hash`, `csrf`: approve quarantined definitions

A browser cannot send a bearer token by itself, so signing in puts the credential in a cookie
scoped to `/console` (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS); every request is
then authenticated exactly as `/admin/` is, with that credential, on any replica. The one
write, approval, also needs a CSRF token (an HMAC of the credential: a page from another site
can neither read nor compute it, and every replica can check it) and, when the browser sends
one, an `Origin` equal to the console's own; it goes to the registry the router follows (as
`toolmesh approve` does) and is written to the audit stream and the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import parse_qs

from router.guard.agent import Agent, AuthError
from router.observe.audit import AuditLog
from router.observe.usage import Usage
from router.relay.meta_tools import MAX_LIMIT, ToolSearch
from router.server.console import page
from router.server.console.recent import RecentCalls
from router.server.operator import Replica
from router.server.replies import Receive, Scope, Send, decoded_headers, read_body, send_problem, send_reply

log = logging.getLogger("toolmesh.console")

PREFIX = "/console"
COOKIE = "toolmesh_console"
MAX_FORM = 16 * 1024
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(page.SCRIPT.encode()).digest()).decode()
HTML_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        f"default-src 'none'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        f"style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'".encode(),
    ),
]


class Refused(NamedTuple):
    """Why a credential does not open the console, and the status that says so."""

    status: int  # 401: no credential or a bad one; 403: an agent outside the admin groups
    why: str  # "" when there was no credential to check


@runtime_checkable
class Approver(Protocol):
    """Where approvals go: a catalog source that is a registry (`RegistrySource`)."""

    name: str

    async def approve(self, server: str, digest: str) -> None: ...


def csrf_token(credential: str) -> str:
    return hmac.new(credential.encode(), b"toolmesh console approval", hashlib.sha256).hexdigest()[:32]


def _cookies(headers: Mapping[str, str]) -> dict[str, str]:
    jar: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            jar[name] = value
    return jar


class Console:
    def __init__(
        self,
        replica: Replica,
        *,
        audit: AuditLog,
        recent: RecentCalls | None,
        search: ToolSearch | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.replica = replica
        self.audit = audit
        self.recent = recent
        self.search = search  # the router's tool search, ranking the console's search box
        self.usage = usage
        self.approvers = tuple(source for source in replica.sources if isinstance(source, Approver))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/") or "/"
        method: str = scope["method"]
        headers = decoded_headers(scope)
        routes = {
            (PREFIX, "GET"): self._page,
            (f"{PREFIX}/live", "GET"): self._live,
            (f"{PREFIX}/login", "POST"): self._login,
            (f"{PREFIX}/logout", "POST"): self._logout,
            (f"{PREFIX}/approve", "POST"): self._approve,
        }
        handler = routes.get((path, method))
        if handler is None:
            allowed = [m for (p, m) in routes if p == path]
            status, extra = (405, [(b"allow", ", ".join(allowed).encode())]) if allowed else (404, [])
            await _html(send, status, page.refused(f"no {method} {path} here"), extra)
            return
        await handler(scope, receive, send, headers)

    # -- who is asking ------------------------------------------------------------------------

    def _credential(self, headers: Mapping[str, str]) -> str | None:
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            return authorization[7:].strip()
        return _cookies(headers).get(COOKIE) or None

    async def _admin(self, scope: Scope, credential: str | None) -> Agent | Refused:
        """The admin agent `credential` names, or why not."""
        if credential is None:
            return Refused(401, "")
        try:
            agent = await self.replica.auth.authenticate(
                {"authorization": f"Bearer {credential}"}, scope.get("client")
            )
        except AuthError as exc:
            self.replica.metrics.auth_failures.labels(exc.reason).inc()
            return Refused(401, f"sign-in refused: {exc.description}")
        if agent.anonymous:
            return Refused(401, "")
        if agent.groups.isdisjoint(self.replica.admin_groups):
            return Refused(403, f"agent {agent.id!r} is not in an admin group")
        return agent

    async def _gate(self, scope: Scope, send: Send, headers: Mapping[str, str]) -> tuple[Agent, str] | None:
        """The admin agent and its credential, or None once a refusal was sent."""
        credential = self._credential(headers)
        admin = await self._admin(scope, credential)
        if isinstance(admin, Agent):
            assert credential is not None
            return admin, credential
        if admin.status == 403:
            await _html(send, 403, page.refused(admin.why))
        else:
            await _html(
                send, 401, page.login(admin.why), [(b"www-authenticate", b'Bearer realm="toolmesh console"')]
            )
        return None

    # -- pages --------------------------------------------------------------------------------

    def _query(self, scope: Scope) -> str:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("q") or [""]
        return str(values[-1]).strip()[:200]

    async def _found(self, agent: Agent, query: str) -> list[tuple[str, str, str]] | None:
        """The tools the search box finds, ranked by the router's tool search as for
        `/v1/tools/search` (what this admin's policy view shows); None to let the page match
        words itself."""
        if not query or self.search is None:
            return None
        view = self.replica.guard.view(agent)
        found = (await self.search.find(view, self.replica.pool.index, query, MAX_LIMIT))["tools"]
        return [(row["server"], row["name"], row["description"]) for row in found]

    async def _live_html(self, agent: Agent, query: str, credential: str) -> str:
        calls = self.recent.newest() if self.recent is not None else None
        return page.live(
            self.replica,
            query=query,
            csrf=csrf_token(credential),
            can_approve=bool(self.approvers),
            calls=calls,
            tools=await self._found(agent, query),
            usage=self._usage(),
        )

    def _usage(self) -> list[dict[str, Any]] | None:
        """Calls per agent and tool over the last 24 hours, busiest first (at most 50 rows)."""
        if self.usage is None:
            return None
        totals: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in self.usage.query(since=time.time() - 86400, period="day"):
            key = (row["agent"], row["server"], row["tool"])
            kept = totals.setdefault(key, {**row, "calls": 0, "errors": 0, "tokens": 0})
            for field in ("calls", "errors", "tokens"):
                kept[field] += row[field]
        return sorted(totals.values(), key=lambda row: -row["calls"])[:50]

    async def _page(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        gate = await self._gate(scope, send, headers)
        if gate is None:
            return
        agent, credential = gate
        query = self._query(scope)
        body = f'<div id="live" aria-live="polite">{await self._live_html(agent, query, credential)}</div>'
        body += '<form method="post" action="/console/logout"><button>Sign out</button></form>'
        await _html(
            send, 200, page.document("toolmesh console", body, agent=agent.id, query=query, script=True)
        )

    async def _live(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        credential = self._credential(headers)
        admin = await self._admin(scope, credential)
        if isinstance(admin, Refused):
            why = admin.why or "the console session ended"
            await send_problem(send, admin.status, f"{why}: sign in again at {PREFIX}")
            return
        assert credential is not None  # an admin is only ever found by a credential
        await _html(send, 200, await self._live_html(admin, self._query(scope), credential))

    async def _login(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        if not _same_origin(scope, headers):
            await _html(send, 403, page.refused("sign-in from another site refused"))
            return
        form = await _form(receive)
        key = (form.get("key") or "").strip()
        admin = await self._admin(scope, key or None)
        if not isinstance(admin, Agent):
            await _html(send, admin.status, page.login(admin.why or "give an API key"))
            return
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{COOKIE}={key}; Path={PREFIX}; HttpOnly; SameSite=Strict{secure}"
        log.info("console sign-in", extra={"agent": admin.id})
        await send_reply(send, 303, b"", [(b"location", PREFIX.encode()), (b"set-cookie", cookie.encode())])

    async def _logout(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        cookie = f"{COOKIE}=; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0"
        await send_reply(send, 303, b"", [(b"location", PREFIX.encode()), (b"set-cookie", cookie.encode())])

    async def _approve(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        gate = await self._gate(scope, send, headers)
        if gate is None:
            return
        agent, credential = gate
        form = await _form(receive)
        server, digest = form.get("server", ""), form.get("hash", "")
        if not _same_origin(scope, headers) or not hmac.compare_digest(
            form.get("csrf", ""), csrf_token(credential)
        ):
            log.warning("console approval refused: bad CSRF token or origin", extra={"agent": agent.id})
            await _html(
                send, 403, page.refused("approval refused: the form is stale or came from another site")
            )
            return
        pending = {record.pending_hash for record in self.replica.pool.withheld if record.server == server}
        if digest not in pending:
            await _html(
                send, 409, page.refused(f"server {server!r} has no quarantined definitions {digest[:16]!r}")
            )
            return
        if not self.approvers:
            await _html(
                send, 409, page.refused("no registry to approve in: this router reads a catalog file")
            )
            return
        started = time.perf_counter()
        outcome, error = "ok", ""
        try:
            for approver in self.approvers:
                await approver.approve(server, digest)
        except Exception as exc:  # the registry is unreachable: say so, keep serving
            outcome, error = "error", str(exc)
        self._audit(agent, server, digest, outcome, time.perf_counter() - started)
        if error:
            await _html(send, 503, page.refused(f"the registry did not take the approval: {error}"))
            return
        await send_reply(send, 303, b"", [(b"location", PREFIX.encode())])

    def _audit(self, agent: Agent, server: str, digest: str, outcome: str, seconds: float) -> None:
        log.warning(
            "definitions approved from the console" if outcome == "ok" else "console approval failed",
            extra={"agent": agent.id, "server": server, "hash": digest},
        )
        if self.audit.enabled:
            self.audit.record(
                agent=agent.id, session=None, method="console/approve", target=server, server=server,
                instance=None, arguments={"hash": digest}, outcome=outcome, error_code=None,
                seconds=seconds, trace_id="", span_id="", era="", via="console",
            )  # fmt: skip


def _same_origin(scope: Scope, headers: Mapping[str, str]) -> bool:
    """A browser's POST carries `Origin`; it must be this console's own (absent: not a browser,
    which the CSRF token and cookie rules already cover)."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return origin == f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"


async def _form(receive: Receive) -> dict[str, str]:
    body = await read_body(receive, MAX_FORM) or b""
    return {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


async def _html(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send_reply(send, status, text.encode(), [*HTML_HEADERS, *(extra or [])])
