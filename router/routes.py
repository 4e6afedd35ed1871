"""Which path goes where: the router's ASGI routing (/mcp, /mcp/{namespace}, /v1/tools,
/v1/namespaces/{namespace}/tools, /v1/usage, /healthz, /readyz, /metrics, /admin/, /console, the OAuth
resource metadata) and the lifespan, handed to the runtime."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import make_asgi_app

from router.guard.backend_tokens import BackendSigner
from router.guard.identity import Authenticator
from router.observe.audit import AuditLog
from router.observe.usage import Usage
from router.relay.meta_tools import ToolSearch
from router.server.console.endpoint import Console
from router.server.console.recent import RecentCalls
from router.server.http import McpEndpoint
from router.server.operator import Replica, readiness, serve_admin
from router.server.replies import Receive, Scope, Send, decoded_headers, send_json, send_problem
from router.server.tools_http import ToolsEndpoint
from router.server.usage_http import UsageEndpoint
from router.settings import RouterSettings

# Paths that only report: any method but GET and HEAD is a 405 (a POST to /metrics is no scrape).
READ_ONLY = frozenset({"/healthz", "/readyz", "/metrics"})  # and /.well-known/*

NAMESPACES = "/v1/namespaces/"
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]
Lifespan = Callable[[Receive, Send], Awaitable[None]]


class Routes:
    """Routes each request by path to the part that serves it; `serving` builds the HTTP surfaces
    beside /mcp over the same admission and calls."""

    @classmethod
    def serving(
        cls,
        settings: RouterSettings,
        mcp: McpEndpoint,
        replica: Replica,
        lifespan: Lifespan,
        *,
        search: ToolSearch,
        audit: AuditLog,
        recent: RecentCalls | None,
        usage: Usage,
        signer: BackendSigner,
    ) -> Routes:
        admins = frozenset(settings.admin_groups)
        metrics = replica.metrics
        return cls(
            mcp,
            ToolsEndpoint(mcp.admission, mcp.calls, max_body_bytes=settings.max_body_bytes, search=search),
            make_asgi_app(registry=metrics.registry),
            replica.auth,
            replica,
            lifespan,
            Console(replica, audit=audit, recent=recent, search=search, usage=usage),
            UsageEndpoint(usage, replica.auth, metrics, admins),
            signer,
        )

    def __init__(
        self,
        mcp: McpEndpoint,
        tools: ToolsEndpoint,
        metrics: Asgi,
        auth: Authenticator,
        replica: Replica,
        lifespan: Lifespan,
        console: Asgi,
        usage: Asgi | None = None,
        signer: BackendSigner | None = None,
    ) -> None:
        self.mcp = mcp
        self.tools = tools
        self.metrics = metrics
        self.auth = auth
        self.replica = replica
        self.lifespan = lifespan
        self.console = console
        self.usage = usage
        self.signer = signer

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path in {"/mcp", "/mcp/"}:
                await self.mcp(scope, receive, send)
            elif path.startswith("/mcp/") and "/" not in path[5:].rstrip("/"):
                await self.mcp(scope, receive, send, namespace=path[5:].rstrip("/"))
            elif (path in READ_ONLY or path.startswith("/.well-known/")) and scope["method"] not in {
                "GET",
                "HEAD",
            }:
                await send_problem(send, 405, f"{path} answers GET and HEAD only", [(b"allow", b"GET, HEAD")])
            elif path == "/healthz":
                await send_json(send, 200, {"status": "ok"})
            elif path == "/readyz":
                ready, detail = readiness(self.replica)
                await send_json(send, 200 if ready else 503, detail)
            elif path == "/metrics":
                await self.metrics(scope, receive, send)
            elif path.startswith(("/.well-known/oauth-protected-resource", "/v1/usage", "/admin")) and (
                not self.mcp.admission.origins.host_ok(decoded_headers(scope).get("host"))
            ):
                # the metadata and a 401's challenge are built from Host: only a Host /mcp itself
                # takes is echoed (/v1/tools and /mcp check it in their admission)
                await send_problem(send, 421, "Invalid Host header")
            elif path.startswith("/.well-known/oauth-protected-resource"):
                scheme = scope.get("scheme", "http")
                await send_json(
                    send, 200, self.auth.protected_resource_metadata(scheme, decoded_headers(scope))
                )
            elif path == "/.well-known/jwks.json" and self.signer is not None:
                await send_json(send, 200, self.signer.jwks())  # keys of the tokens backends get
            elif path == "/v1/usage" and self.usage is not None:
                await self.usage(scope, receive, send)
            elif path.startswith("/v1/tools") or path == "/v1/openapi.json":
                await self.tools(scope, receive, send)
            elif path.startswith(NAMESPACES):
                namespace, _, rest = path[len(NAMESPACES) :].partition("/")
                if namespace and (rest == "tools" or rest.startswith("tools/")):
                    await self.tools({**scope, "path": "/v1/" + rest}, receive, send, namespace=namespace)
                else:  # in the shape of the surface's own errors (tools_http.py)
                    hint = f"no such path {path}; use {NAMESPACES}{{name}}/tools"
                    await send_problem(send, 404, hint)
            elif path in {"/admin", "/admin/"}:
                await serve_admin(self.replica, scope, send)
            elif path == "/console" or path.startswith("/console/"):
                await self.console(scope, receive, send)
            else:
                error = f"no such path {path}; MCP is served at /mcp, plain HTTP tool calls at /v1/tools"
                await send_problem(send, 404, error)
        elif kind == "lifespan":
            await self.lifespan(receive, send)
