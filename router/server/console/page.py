"""The console's HTML: drawn on the server from the replica's parts, escaped throughout.

`document` is the whole page; `live` the part that changes, which the page's script fetches
again every second (`/console/live`) and swaps in, so the page stays current without a reload
and without a build step: a dozen lines of plain JavaScript, and the page works without them
(a reload shows the same thing). The layout is one column of sections; tables scroll sideways
inside their section on a narrow screen, so it reads at 1280 px and on a phone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from router.catalog.index import Index
from router.guard.budget_report import report as budget_report
from router.server.operator import Replica

REFRESH_MS = 1000

STYLE = """
:root { color-scheme: light dark; --line: #8884; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .75rem 1rem;
  border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.1rem; margin: 0; }
header .who { margin-left: auto; opacity: .75; }
main { padding: 0 1rem 2rem; max-width: 1280px; margin: 0 auto; }
section { margin-top: 1.25rem; }
h2 { font-size: 1rem; margin: 0 0 .4rem; }
.scroll { overflow-x: auto; margin-bottom: .9rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
code { font-size: .9em; }
td code { white-space: nowrap; }
header form { display: flex; gap: .4rem; flex: 1 1 16rem; max-width: 32rem; }
.ready, .ok, .closed { color: var(--ok); }
.down, .error, .open, .quarantined { color: var(--bad); font-weight: 600; }
.connecting, .half-open, .drifted, .cancelled { color: var(--warn); }
form.inline { display: inline; }
input[type=search] { font: inherit; padding: .3rem .5rem; flex: 1; min-width: 0; }
button { font: inherit; padding: .25rem .7rem; cursor: pointer; }
.muted { opacity: .7; }
@media (max-width: 640px) {
  body { font-size: 14px; } th, td { padding: .25rem .35rem; }
  .scroll table { min-width: 40rem; }  /* tables scroll sideways in their section; names stay whole */
}
"""

SCRIPT = """
(function () {
  var live = document.getElementById("live");
  var stamp = document.getElementById("stamp");
  async function refresh() {
    try {
      var response = await fetch("/console/live" + location.search, {credentials: "same-origin"});
      if (response.ok) { live.innerHTML = await response.text();
        stamp.textContent = "live, updated " + new Date().toLocaleTimeString(); }
      else { stamp.textContent = "not updating: HTTP " + response.status; }
    } catch (e) { stamp.textContent = "not updating: router unreachable"; }
  }
  setInterval(refresh, REFRESH_MS);
})();
""".replace("REFRESH_MS", str(REFRESH_MS))


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _cls(word: str) -> str:
    return f'<span class="{_e(word)}">{_e(word)}</span>'


def document(
    title: str, body: str, *, agent: str | None = None, query: str = "", script: bool = False
) -> str:
    who = f'<span class="who">signed in as <b>{_e(agent)}</b></span>' if agent else ""
    search = (
        '<form method="get" action="/console" role="search">'
        f'<input type="search" name="q" value="{_e(query)}" placeholder="search tools" aria-label="search tools">'
        " <button>Search</button></form>"
        if agent
        else ""
    )
    stamp = '<span id="stamp" class="muted">live</span>' if script else ""
    code = f"<script>{SCRIPT}</script>" if script else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>toolmesh console</h1>{search}{stamp}{who}</header>"
        f"<main>{body}</main>{code}</body></html>"
    )


def login(message: str = "") -> str:
    note = f'<p class="error" role="alert">{_e(message)}</p>' if message else ""
    form = (
        "<section><h2>Sign in</h2>"
        "<p>Give an API key of an agent in an admin group (the same credentials as <code>/admin/</code>).</p>"
        f"{note}"
        '<form method="post" action="/console/login">'
        '<input type="password" name="key" autocomplete="current-password" aria-label="API key" required> '
        "<button>Sign in</button></form></section>"
    )
    return document("toolmesh console: sign in", form)


def refused(message: str) -> str:
    return document(
        "toolmesh console", f'<section><h2>Not allowed</h2><p class="error">{_e(message)}</p></section>'
    )


def live(
    replica: Replica,
    *,
    query: str,
    csrf: str,
    can_approve: bool,
    calls: Sequence[dict[str, Any]] | None,
    tools: Sequence[tuple[str, str, str]] | None = None,
    usage: Sequence[dict[str, Any]] | None = None,
) -> str:
    """The changing part of the page: instances, drift, tools (searched), namespaces and
    overrides, budgets, usage, recent calls."""
    return "".join(
        [
            _instances(replica),
            _drift(replica, csrf, can_approve),
            _tools(replica.pool.index, query, tools),
            _policy(replica),
            _budgets(replica),
            _usage(usage),
            _calls(calls),
            f'<p class="muted">drawn {_e(time.strftime("%H:%M:%S"))}</p>',
        ]
    )


def _instances(replica: Replica) -> str:
    rows = []
    for (server, instance), backend in sorted(replica.pool.backends.items()):
        guard = replica.pool.instances.get((server, instance))
        breaker = guard.breaker.state if guard is not None else "closed"
        session = backend.session
        era = session.protocol_version if session is not None else "-"
        record = backend.record
        error = (
            f'<div class="muted">{_e(backend.last_error)}</div>'
            if backend.state != "ready" and backend.last_error
            else ""
        )
        refused = backend.listing.refused  # lists the backend answers with errors: left out, retried
        if refused:
            error += f'<div class="muted refused">lists refused: {_e(", ".join(refused))}</div>'
        defs = backend.definitions
        repaired = (
            '<div class="muted">repaired: '
            + _e(", ".join(f"{count} {kind}" for kind, count in defs.repairs.items()))
            + "</div>"
            if defs is not None and defs.repairs
            else ""
        )
        rows.append(
            f'<tr data-server="{_e(server)}" data-instance="{_e(instance)}">'
            f"<td>{_e(server)}</td><td>{_e(instance if instance != server else '')}</td>"
            f"<td>{_e(record.transport)}</td><td class=health>{_cls(backend.state)}{error}</td>"
            f"<td>{_e(era)}</td><td>{_cls(breaker)}</td>"
            f"<td>{_cls(record.definitions_state)}{' (registry: failing)' if guard is not None and guard.critical else ''}"
            f"{repaired}</td></tr>"
        )
    for record in replica.pool.withheld:
        rows.append(
            f'<tr data-server="{_e(record.server)}" data-instance="{_e(record.instance_id)}">'
            f"<td>{_e(record.server)}</td><td>{_e(record.instance_id)}</td><td>{_e(record.transport)}</td>"
            '<td class=health><span class="muted">withheld</span></td><td>-</td><td>-</td>'
            f"<td>{_cls(record.definitions_state)}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan=7 class="muted">no servers in the catalog</td></tr>'
    return (
        '<section id="instances"><h2>Servers and instances</h2><div class="scroll"><table>'
        "<thead><tr><th>server</th><th>instance</th><th>transport</th><th>health</th><th>era</th>"
        "<th>breaker</th><th>definitions</th></tr></thead>"
        f"<tbody>{body}</tbody></table></div></section>"
    )


def _drift(replica: Replica, csrf: str, can_approve: bool) -> str:
    rows = []
    for record in replica.pool.withheld:
        server, instance = record.server, record.instance_id
        if record.pending_hash is None:
            continue
        if can_approve:
            action = (
                '<form class="inline" method="post" action="/console/approve">'
                f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
                f'<input type="hidden" name="server" value="{_e(server)}">'
                f'<input type="hidden" name="hash" value="{_e(record.pending_hash)}">'
                f'<button aria-label="approve {_e(server)}">Approve</button></form>'
            )
        else:
            action = '<span class="muted">no registry to approve in</span>'
        rows.append(
            f'<tr data-server="{_e(server)}"><td>{_e(server)}</td><td>{_e(instance)}</td>'
            f"<td><code>{_e(record.pending_hash[:16])}…</code></td><td>{action}</td></tr>"
        )
    if not rows:
        return '<section id="drift"><h2>Quarantined definitions</h2><p class="muted">none</p></section>'
    return (
        '<section id="drift"><h2>Quarantined definitions</h2>'
        "<p>These instances changed their definitions and are withheld until approved.</p>"
        '<div class="scroll"><table><thead><tr><th>server</th><th>instance</th><th>new definitions</th>'
        f"<th></th></tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def matching_tools(index: Index, query: str) -> list[tuple[str, str, str]]:
    """(server, exposed name, description) of the tools whose name or description holds every
    word of `query` (all tools when it is empty)."""
    words = query.lower().split()
    found = []
    for tool in index.items("tools"):
        server = index.owner("tools", tool) or ""
        text = f"{tool.get('name', '')} {tool.get('description', '')} {server}".lower()
        if all(word in text for word in words):
            found.append((server, str(tool.get("name", "")), str(tool.get("description") or "")))
    return found


def _tools(index: Index, query: str, tools: Sequence[tuple[str, str, str]] | None) -> str:
    found = list(tools) if tools is not None else matching_tools(index, query)
    shown = found[:200]
    rows = "".join(
        f"<tr><td>{_e(server)}</td><td><code>{_e(name)}</code></td><td>{_e(description[:300])}</td></tr>"
        for server, name, description in shown
    )
    title = f"Tools for “{_e(query)}”" if query else "Tools"
    more = f'<p class="muted">{len(found) - len(shown)} more</p>' if len(found) > len(shown) else ""
    empty = '<p class="muted">no tools</p>' if not found else ""
    clear = ' <a href="/console">show all</a>' if query else ""
    return (
        f'<section id="tools"><h2>{title} ({len(found)}){clear}</h2>{empty}'
        + (
            '<div class="scroll"><table><thead><tr><th>server</th><th>tool</th><th>description</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
            if found
            else ""
        )
        + f"{more}</section>"
    )


def _policy(replica: Replica) -> str:
    """The namespaces (`/mcp/{name}`) and tool overrides the policy in force declares."""
    policy = replica.guard.policy
    if policy is None:
        return '<section id="policy"><h2>Namespaces and overrides</h2><p class="muted">no policy: every agent sees every server at /mcp</p></section>'
    document = policy.document
    spaces = "".join(
        f"<tr><td><code>/mcp/{_e(name)}</code></td><td>{_e(spec.title or '')}</td>"
        f"<td>{_e(', '.join(spec.servers) or 'all')}</td><td>{_e(', '.join(spec.tools) or 'all')}</td>"
        f"<td>{_e(', '.join([*spec.agents, *spec.groups]) or 'everyone')}</td></tr>"
        for name, spec in sorted(document.namespaces.items())
    )
    overrides = "".join(
        f"<tr><td><code>{_e(o.tool)}</code></td><td>{_e(o.name or '')}</td>"
        f"<td>{_e('off' if o.enabled is False else 'on' if o.enabled else '')}</td>"
        f"<td>{_e((o.description or '')[:120])}</td><td>{_e(', '.join(o.groups) or 'everyone')}</td></tr>"
        for o in document.overrides
    )
    none = '<p class="muted">none</p>'
    return (
        f'<section id="policy"><h2>Namespaces ({len(document.namespaces)})</h2>'
        + (
            '<div class="scroll"><table><thead><tr><th>endpoint</th><th>title</th><th>servers</th>'
            f"<th>tools</th><th>who</th></tr></thead><tbody>{spaces}</tbody></table></div>"
            if spaces
            else none
        )
        + f"<h2>Tool overrides ({len(document.overrides)})</h2>"
        + (
            '<div class="scroll"><table><thead><tr><th>tool</th><th>renamed</th><th>enabled</th>'
            f"<th>description</th><th>for</th></tr></thead><tbody>{overrides}</tbody></table></div>"
            if overrides
            else none
        )
        + "</section>"
    )


def _budgets(replica: Replica) -> str:
    """Each budget of the policy in force: what it spent of its limit in this window."""
    policy = replica.guard.policy
    if policy is None or not policy.budgets or replica.budget_store is None:
        return ""
    rows = "".join(_budget_row(row) for row in budget_report(policy.budgets, replica.budget_store))
    return (
        '<section id="budgets"><h2>Budgets</h2><div class="scroll"><table><thead><tr><th>budget</th>'
        "<th>whose</th><th>spent</th><th>limit</th><th>period</th><th>resets</th><th>busiest agents</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div></section>"
    )


def _budget_row(row: dict[str, Any]) -> str:
    busiest = ", ".join(f"{agent} {used:g}" for agent, used in row.get("agents", {}).items())
    cells = [
        row["name"], row["subject"], f"{row['spent']:g}", f"{row['limit']:g} {row['unit']}", row["period"],
        row["resets_at"], busiest,
    ]  # fmt: skip
    return "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in cells) + "</tr>"


def _usage(rows: Sequence[dict[str, Any]] | None) -> str:
    if rows is None:
        return ""
    body = "".join(
        f"<tr><td>{_e(row['agent'])}</td><td><code>{_e(row['tool'])}</code></td><td>{_e(row['server'])}</td>"
        f"<td>{_e(row['calls'])}</td><td>{_e(row['errors'])}</td><td>{_e(row['tokens'])}</td></tr>"
        for row in rows
    )
    table = (
        '<div class="scroll"><table><thead><tr><th>agent</th><th>tool</th><th>server</th><th>calls</th>'
        f"<th>errors</th><th>tokens</th></tr></thead><tbody>{body}</tbody></table></div>"
        if body
        else '<p class="muted">no calls in the last 24 hours</p>'
    )
    return f'<section id="usage"><h2>Usage, last 24 hours</h2>{table}</section>'


def _calls(calls: Sequence[dict[str, Any]] | None) -> str:
    if calls is None:
        return (
            '<section id="calls"><h2>Last calls</h2><p class="muted">audit is off: set '
            "<code>audit_sink</code> (TOOLMESH_AUDIT_SINK) to see the calls here.</p></section>"
        )
    rows = "".join(
        f"<tr><td>{_e(str(call.get('time', ''))[11:23])}</td><td>{_e(call.get('agent'))}</td>"
        f"<td>{_e(call.get('method'))}</td><td><code>{_e(call.get('target'))}</code></td>"
        f"<td>{_cls(str(call.get('outcome', '')))}</td><td>{_e(call.get('latency_ms'))}</td></tr>"
        for call in calls
    )
    body = rows or '<tr><td colspan=6 class="muted">no calls yet</td></tr>'
    return (
        '<section id="calls"><h2>Last calls</h2><div class="scroll"><table><thead><tr><th>time (UTC)</th>'
        "<th>agent</th><th>method</th><th>target</th><th>outcome</th><th>ms</th></tr></thead>"
        f"<tbody>{body}</tbody></table></div></section>"
    )


def console_url(query: str) -> str:
    return "/console" + (f"?q={quote(query)}" if query else "")
