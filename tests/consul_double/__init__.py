"""A faithful, in-process double of the parts of Consul's HTTP API that toolmesh uses.

Consul cannot be installed on the development machines, so Consul-facing code is tested
against this double instead. Run it as ``python -m tests.consul_double --port P`` (from the
repository root) or build the ASGI app with :func:`create_app`. Layout: ``state.py`` is the
model (catalog, agent state, TTL timers, reaper, KV, raft-style indexes), ``decode.py``
validates registrations, ``views.py`` renders Consul's JSON, ``app.py`` is the HTTP layer.

Endpoints (only what the router, the registrar and the policy source call)
--------------------------------------------------------------------------
* ``PUT /v1/agent/service/register`` (``?replace-existing-checks``),
  ``PUT /v1/agent/service/deregister/:id``.
* ``PUT /v1/agent/check/pass|fail/:check_id?note=`` (py-consul's ``ttl_pass``/``ttl_fail``).
* ``GET /v1/health/service/:name`` (``?passing``, ``?tag``; blocking).
* ``GET|PUT|DELETE /v1/kv/:key`` (one key; blocking GET).
* ``GET /v1/status/leader`` (readiness).

Faithful (checked against Consul's source and documentation)
------------------------------------------------------------
* Field names in bodies match case-insensitively and accept snake_case
  (py-consul sends ``{"name": ..., "checks": [{"ttl": "10s"}]}``); durations are Go
  durations ("10s", "1m30s"), numbers are nanoseconds.
* Service meta limits (64 pairs, keys ``[a-zA-Z0-9_-]{1,128}``, values <= 512 chars,
  ``consul-`` prefix reserved) with Consul's 400 texts ("Invalid Service Meta: ...");
  "Missing service name", "Invalid service address", "Invalid check: ...",
  "Status for checks must 'passing', 'warning', 'critical'".
* Check IDs default to ``service:<ID>``, or ``service:<ID>:<n>`` (n from 1) when the
  registration has several checks. A TTL check starts critical unless ``Status`` is given;
  re-registering resets listed checks and restarts their TTL, and keeps unlisted ones
  unless ``?replace-existing-checks``. An unknown check on pass/fail answers
  500 ``CheckID "x" does not have associated TTL``; an unknown service on deregister answers
  404 ``Unknown service ID "x". Ensure that the service ID is passed, not the service name.``
* A TTL not refreshed in time turns the check critical with output "TTL expired" (plus the
  last output). Output longer than 4096 bytes is truncated as Consul does. Status changes
  reach the catalog at once; output-only changes are deferred by check_update_interval.
* Reaping: DeregisterCriticalServiceAfter is clamped up to ``--min-deregister-after``
  (Consul: 1 minute) and the reaper runs every ``--reap-interval`` (Consul: 30 s). As in
  Consul, the critical clock starts when a status update makes the check critical (TTL
  expiry or ``fail``), not at registration, so a never-passed check is reaped after
  TTL + DeregisterCriticalServiceAfter + up to one reap interval.
* Indexes: one raft index bumped by every real write; table indexes; a per-service-name
  index that moves on any change to that name's instances or their checks; the "last
  extinction" index when a name loses its last instance. ``/v1/health/service/:name``
  returns the per-name index (else the extinction index, else the catalog index), KV the
  key's ModifyIndex, else the KV table index. Never 0. Idempotent writes (identical re-registration, a TTL pass that changes
  nothing) move no index, so they do not wake watchers.
* Blocking queries: ``?index=N&wait=D`` returns as soon as the query's index exceeds N, or
  after D plus a random jitter of up to D/16 with the unchanged result; no ``wait`` means
  5 minutes, the cap is 10 minutes; ``index=0`` does not block; an index ahead of the
  server's just blocks (clients must reset). ``?passing`` is applied after the wait and
  does not affect the index, so a wake-up may carry an unchanged passing set.
* Shapes: ``[{"Node", "Service", "Checks"}]`` with the node's ``serfHealth`` check in every
  entry; ``Service.Tags`` always a list; ``Service.Meta`` null when registered without meta;
  ``Service.Address`` empty when not registered.
* KV: base64 ``Value`` (null for an empty value), CreateIndex/ModifyIndex/LockIndex/Flags,
  404 with an ``X-Consul-Index`` for a missing key, PUT/DELETE answer ``true``, "Missing key
  name", 413 above 512 KiB. Recent Consul's key validation (only ``[A-Za-z0-9,-_./]``, no
  ``../``, no file-like suffixes such as ``.json``) is on by default; ``--lenient-kv-keys``
  turns it off.
* ``X-Consul-Index``, ``X-Consul-KnownLeader``, ``X-Consul-LastContact`` and
  ``X-Consul-Effective-Consistency`` on health and KV reads; like Consul, the ``/v1/agent/*``
  and ``/v1/status/*`` endpoints carry no index. ``?dc`` other than the
  double's answers 500 "No path to datacenter". Errors are plain text, as in Consul.

Simplified or absent
--------------------
* One node, one datacenter, no ACLs (tokens are ignored), no namespaces or partitions.
* Writes apply synchronously: the agent's anti-entropy sync to the catalog is immediate
  (Consul does it asynchronously, typically within milliseconds).
* Only TTL checks. HTTP, TCP, gRPC, script, Docker, alias, H2PING, UDP and OSService checks
  are rejected with a 400 "Invalid check: the toolmesh Consul double only runs TTL checks";
  no ``/v1/agent/check/register``; no maintenance mode.
* ``?filter``, ``?node-meta``, ``?peer`` are rejected with 400 rather than ignored;
  ``?near``, ``?stale``, ``?consistent``, ``?cached`` are accepted and make no difference.
* KV: one key at a time. ``?recurse``, ``?keys``, ``?raw``, ``?cas``, ``?flags`` and sessions
  (``?acquire``/``?release``) answer 400 naming the parameter; no ``/v1/txn``; writes always
  bump the index even when the value is unchanged; tombstones are never reaped.
* No ``/v1/agent/services``, ``/v1/agent/checks``, ``/v1/agent/self``, ``/v1/catalog/*``,
  ``/v1/status/peers``, ``warn`` or ``update`` on checks: nothing in toolmesh calls them
  (any other path answers 404 naming it).
* Check ``Definition`` is ``{}``. An unreachable Consul is a stopped double
  (`tests/support/registries.py` restarts it on the same port).
"""

from .app import ConsulDouble, create_app
from .state import ConsulError, ConsulState, DoubleConfig

__all__ = ["ConsulDouble", "ConsulError", "ConsulState", "DoubleConfig", "create_app"]
