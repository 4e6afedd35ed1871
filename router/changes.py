"""What clients hear when something changes: `list_changed` when the catalog changes, resource
updates for what they subscribed to, and the upstream subscriptions that make backends tell us.

Every replica tells only the streams it holds (each stream is on one replica, so each client
hears a change once). With shared state, resource updates heard here go to the other replicas
too, and the URIs other replicas' listen streams want are subscribed upstream here as well
(`router/cluster/updates.py`, behind the `Updates` and `Interests` protocols of `seams.py`).
"""

from __future__ import annotations

from anyio.abc import TaskGroup

from router.catalog.index import LIST_KINDS, Index, ListKind
from router.catalog.namespaces import Namespace
from router.guard.agent import Agent
from router.guard.guard import Guard
from router.guard.policy import Policy
from router.guard.policy_document import KIND_OF_LIST
from router.guard.views import OPEN, View, exposed_name
from router.lifecycle import Service
from router.observe.metrics import BREAKER_STATE_VALUE, Metrics
from router.relay.dispatch import Dispatcher
from router.relay.meta_tools import ToolSearch
from router.seams import Interests, Updates
from router.server.http import McpEndpoint
from router.state.bus import MayRead
from router.state.listeners import ListenStreams
from router.state.sessions import SessionStore
from router.upstream.backend import Backend
from router.upstream.base import Message
from router.upstream.pool import BackendPool

LIST_CHANGED = {
    "tools": "notifications/tools/list_changed",
    "prompts": "notifications/prompts/list_changed",
    "resources": "notifications/resources/list_changed",
    "resourceTemplates": "notifications/resources/list_changed",
}


class Changes(Service):
    """Runs as a service only to hold the task group that releases an ended session's upstream
    sessions (`Dispatcher.forget_client`) off the path that ended it."""

    def __init__(
        self,
        pool: BackendPool,
        endpoint: McpEndpoint,
        dispatcher: Dispatcher,
        guard: Guard,
        sessions: SessionStore,
        listen_streams: ListenStreams,
        metrics: Metrics,
        *,
        updates: Updates | None = None,
        interests: Interests | None = None,
        tool_search: ToolSearch | None = None,
    ) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.dispatcher = dispatcher
        self.guard = guard
        self.sessions = sessions
        self.listen_streams = listen_streams
        self.metrics = metrics
        self.updates = updates
        self.interests = interests
        self.tool_search = tool_search
        self._tg: TaskGroup | None = None

    async def start(self, tg: TaskGroup) -> None:
        self._tg = tg

    async def stop(self) -> None:
        self._tg = None

    async def on_backend_notification(self, backend: Backend, message: Message) -> None:
        """A backend's own notification: resource updates go to the clients subscribed to them."""
        if message.get("method") != "notifications/resources/updated":
            return
        params = message.get("params") or {}
        uri = params.get("uri")
        if isinstance(uri, str):
            exposed = self.pool.naming.expose_uri(backend.server, uri)
            update = {
                "jsonrpc": "2.0",
                "method": "notifications/resources/updated",
                "params": {"uri": exposed},
            }
            if self.updates is not None:  # the stream may be on another replica, which may not hear it
                await self.updates.heard(update)
            else:
                self.deliver_update(update)

    def deliver_update(self, update: Message) -> int:
        """Hand a resource update (heard here or by another replica) to the streams here that
        asked for it and, under a policy, whose agent may still read it."""
        return self.endpoint.broadcast(update, self._may_read(update["params"]["uri"]))

    def _may_read(self, uri: str) -> MayRead | None:
        """Under a policy, who may hear updates of `uri`: the agents whose view lets them read it
        now. Subscriptions were checked when made; this keeps a narrowed policy true for them."""
        guard = self.guard
        if guard.policy is None:
            return None
        target = self.pool.index.resolve_uri(uri)
        server = target.server if target is not None else None

        def may_read(
            agent: str, groups: frozenset[str], namespace: str | None, tools_mode: str | None
        ) -> bool:
            # A URI the catalog no longer resolves cannot be read either.
            if server is None:
                return False
            who = Agent(agent, groups)
            view = guard.view(who) if namespace is None else guard.namespace_view(who, namespace)
            return view is not None and view.allows("resources", server, uri)

        return may_read

    def _hears_tools(self, old: Index, new: Index, audience: MayRead | None) -> MayRead | None:
        """Who of `audience` hears that the tool list changed: a client whose list is the
        search-mode list only if that list's bytes changed (its prompt cache survives the rest)."""
        search, guard = self.tool_search, self.guard
        if search is None:
            return audience

        def hears(agent: str, groups: frozenset[str], namespace: str | None, tools_mode: str | None) -> bool:
            if audience is not None and not audience(agent, groups, namespace, tools_mode):
                return False
            who = Agent(agent, groups)
            view = guard.view(who) if namespace is None else guard.namespace_view(who, namespace)
            if view is None:
                return True
            before = search.listed(tools_mode, view, old)
            after = search.listed(tools_mode, view, new)
            return before is None or after is None or before != after

        return hears

    def session_ended(self, session_id: str, *, subscribed: bool = True) -> None:
        """Release what a legacy session held: its subscriptions and its own upstream sessions.
        The subscriptions are recounted only if it had any (a recount walks every session)."""
        if subscribed:
            self.sync_subscriptions()
        if self._tg is not None:
            self._tg.start_soon(self.dispatcher.forget_client, session_id)

    def sync_subscriptions(self) -> None:
        """Make every backend hold the upstream subscriptions its clients' subscriptions need."""
        wanted: dict[str, set[str]] = {}
        interests = self.listen_streams.interests()
        if self.interests is not None:  # other replicas' listen streams: see cluster/updates.py
            self.interests.set_local(frozenset(interests))
            interests |= self.interests.remote()
        for session in self.sessions.all():
            interests.update(session.record.subscriptions)
        for uri in interests:
            target = self.pool.index.resolve_uri(uri)
            if target is not None:
                wanted.setdefault(target.server, set()).add(target.name)
        for (server, _), backend in self.pool.backends.items():
            backend.set_subscriptions(frozenset(wanted.get(server, ())))

    async def on_index_change(self, old: Index, new: Index) -> None:
        """Tell clients what changed, once per kind, and refresh the catalog gauges. A client of a
        namespace hears it only if that namespace's list changed, a search-mode client only if its
        list's bytes changed."""
        if self.tool_search is not None:
            self.tool_search.live.follow(new)  # the search index follows at once, incrementally
        sent: set[str] = set()
        for kind in LIST_KINDS:
            self.metrics.catalog_items.labels(kind).set(len(new.items(kind)))
            notification = LIST_CHANGED[kind]
            announced = notification in self.pool.announced  # a backend said so: pass it on
            if notification not in sent and (announced or old.items(kind) != new.items(kind)):
                sent.add(notification)
                audience = self._namespaces_changed(old, new, kind)
                if kind == "tools":
                    audience = self._hears_tools(old, new, audience)
                self.endpoint.broadcast({"jsonrpc": "2.0", "method": notification}, audience)
        self.metrics.catalog_conflicts.set(len(new.conflicts))
        self.metrics.definition_repairs.clear()  # a server that left, or mended its lists, shows none
        for server, defs in new.servers.items():
            for listed, count in defs.repairs.items():
                self.metrics.definition_repairs.labels(server, listed).set(count)
        self.metrics.catalog_servers.set(len(new.servers))
        self.sync_subscriptions()  # a backend that (re)connected needs its subscriptions again
        for (server, instance), backend in self.pool.backends.items():
            self.metrics.backend_up.labels(server, instance).set(1 if backend.state == "ready" else 0)
            guard = self.pool.instances[(server, instance)]
            self.metrics.breaker_state.labels(server, instance).set(BREAKER_STATE_VALUE[guard.breaker.state])

    def _namespaces_changed(self, old: Index, new: Index, kind: ListKind) -> MayRead | None:
        """Who hears a change of `kind`: everyone at `/mcp`, and clients of the namespaces whose
        own selection of that list changed (None: everyone, as without namespaces). A change a
        backend announced without any item changing reaches only `/mcp`."""
        policy = self.guard.policy
        if policy is None or not policy.namespaces:
            return None
        changed = {
            name
            for name, namespace in policy.namespaces.items()
            if _held(namespace, old, kind) != _held(namespace, new, kind)
        }

        def hears(agent: str, groups: frozenset[str], namespace: str | None, tools_mode: str | None) -> bool:
            return namespace is None or namespace in changed

        return hears

    def on_policy_change(self, old: Policy | None, new: Policy) -> None:
        """A new policy document: a client hears list_changed for each kind whose list, as its
        agent may see it, is not the same under the new policy (a search-mode client: only if its
        search-mode list's bytes changed); a client of a namespace whose declaration changed (or
        vanished) hears it for every kind, since what it may list changed with it."""
        before = old.document.namespaces if old is not None else {}
        after = new.document.namespaces
        changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
        index = self.pool.index
        for notification in dict.fromkeys(LIST_CHANGED.values()):
            kinds = [kind for kind in LIST_KINDS if LIST_CHANGED[kind] == notification]
            hears = self._hears_policy_change(old, new, changed, kinds, index)
            self.endpoint.broadcast({"jsonrpc": "2.0", "method": notification}, hears)

    def _hears_policy_change(
        self, old: Policy | None, new: Policy, namespaces: set[str], kinds: list[ListKind], index: Index
    ) -> MayRead:
        search = self.tool_search
        decided: dict[tuple[str, frozenset[str], str | None], bool] = {}  # one answer per agent

        def lists(view: View, kind: ListKind, tools_mode: str | None) -> object:
            listed = search.listed(tools_mode, view, index) if kind == "tools" and search else None
            return listed if listed is not None else view.pages(index, kind, 0)

        def hears(agent: str, groups: frozenset[str], namespace: str | None, tools_mode: str | None) -> bool:
            if namespace is not None:
                return namespace in namespaces
            key = (agent, groups, tools_mode)
            if key not in decided:
                who = Agent(agent, groups)
                was = View(old, old.scope_of(who)) if old is not None else OPEN
                now = View(new, new.scope_of(who))
                decided[key] = any(
                    lists(was, kind, tools_mode) != lists(now, kind, tools_mode) for kind in kinds
                )
            return decided[key]

        return hears

    def refresh_servers(self, servers: set[str]) -> int:
        """Refetch those servers' lists (another replica saw them change); how many backends."""
        refreshed = 0
        for (server, _), backend in list(self.pool.backends.items()):
            if server in servers:
                backend.refresh()
                refreshed += 1
        return refreshed


def _held(namespace: Namespace, index: Index, kind: ListKind) -> list[object]:
    """The items of one list a namespace holds (before any agent's policy narrows it)."""
    policy_kind = KIND_OF_LIST[kind]
    return [
        item
        for item in index.items(kind)
        if (owner := index.owner(kind, item)) is not None
        and namespace.holds(policy_kind, owner, exposed_name(kind, item))
    ]
