"""A faithful, in-process double of the parts of Consul's HTTP API that toolmesh uses.

Consul cannot be installed on the development machines, so Consul-facing code is tested
against this double instead. Run it as ``python -m tests.consul_double --port P`` (from the
repository root) or build the ASGI app with :func:`create_app`. Layout: ``state.py`` is the
model (catalog, agent state, TTL timers, reaper, KV, raft-style indexes), ``decode.py``
validates registrations, ``views.py`` renders Consul's JSON, ``app.py`` is the HTTP layer.

Endpoints
---------
* ``PUT /v1/agent/service/register`` (``?replace-existing-checks``),
  ``PUT /v1/agent/service/deregister/:id``, ``GET /v1/agent/services``,
  ``GET /v1/agent/service/:id``, ``GET /v1/agent/checks``, ``GET /v1/agent/self`` (minimal).
* ``PUT /v1/agent/check/pass|warn|fail/:check_id?note=``, ``PUT /v1/agent/check/update/:check_id``.
* ``GET /v1/health/service/:name`` (``?passing``, ``?tag``), ``GET /v1/catalog/services``,
  ``GET /v1/catalog/service/:name`` (``?tag``); all three support blocking queries.
* ``GET|PUT|DELETE /v1/kv/:key`` (``?recurse``, ``?keys``, ``?separator``, ``?raw``, ``?cas``,
  ``?flags``; blocking GET).
* ``GET /v1/status/leader``, ``GET /v1/status/peers``.
* Test-only: ``POST /_double/pause?mode=error|hang&seconds=S`` (every API path answers 503,
  or hangs, until ``POST /_double/resume`` or S seconds), ``POST /_double/reap`` (one
  reaper pass now), ``GET /_double/state``.

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
  unless ``?replace-existing-checks``. An unknown check on pass/warn/fail/update answers
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
  extinction" index when a name loses its last instance. ``/v1/health/service/:name`` and
  ``/v1/catalog/service/:name`` return the per-name index (else the extinction index, else
  the catalog index), ``/v1/catalog/services`` the services-table index, KV the key's
  ModifyIndex or the prefix's highest ModifyIndex including tombstones, else the KV table
  index. Never 0. Idempotent writes (identical re-registration, a TTL pass that changes
  nothing) move no index, so they do not wake watchers.
* Blocking queries: ``?index=N&wait=D`` returns as soon as the query's index exceeds N, or
  after D plus a random jitter of up to D/16 with the unchanged result; no ``wait`` means
  5 minutes, the cap is 10 minutes; ``index=0`` does not block; an index ahead of the
  server's just blocks (clients must reset). ``?passing`` is applied after the wait and
  does not affect the index, so a wake-up may carry an unchanged passing set.
* Shapes: ``[{"Node", "Service", "Checks"}]`` with the node's ``serfHealth`` check in every
  entry; ``Service.Tags`` always a list; ``Service.Meta`` null when registered without meta
  (``{}`` on agent and catalog endpoints); ``Service.Address`` empty when not registered.
  The built-in ``consul`` service is listed by the catalog but not by ``/v1/agent/services``.
* KV: base64 ``Value`` (null for an empty value), CreateIndex/ModifyIndex/LockIndex/Flags,
  404 with an ``X-Consul-Index`` for a missing key or empty prefix (``?keys`` on the root
  gives ``[]``), PUT/DELETE answer ``true``/``false``, ``cas=0`` creates only, a CAS delete
  of a missing key answers true, "Missing key name", "Conflicting flags", 413 above 512 KiB,
  ``?raw`` as text/plain. Recent Consul's key validation (only ``[A-Za-z0-9,-_./]``, no
  ``../``, no file-like suffixes such as ``.json``) is on by default; ``--lenient-kv-keys``
  turns it off.
* ``X-Consul-Index``, ``X-Consul-KnownLeader``, ``X-Consul-LastContact`` and
  ``X-Consul-Effective-Consistency`` on health, catalog and KV reads; like Consul, the
  ``/v1/agent/*`` and ``/v1/status/*`` endpoints carry no index. ``?dc`` other than the
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
  No hash-based blocking on ``/v1/agent/services``.
* No sessions or locks (``?acquire``/``?release`` answer 400), no ``/v1/txn``; KV writes
  always bump the index even when the value is unchanged; tombstones are never reaped.
* Check ``Definition`` is ``{}``; ``/v1/agent/self`` carries only basic fields; the version
  reported is 1.21.4.
* The pause hook is not a Consul feature. In ``error`` mode every API path answers 503 and
  in-flight blocking queries are cut short with 503; in ``hang`` mode requests and
  responses are held until resume. TTL timers and the reaper keep running while paused,
  as they would on an agent the clients cannot reach.
"""

from .app import ConsulDouble, create_app
from .state import ConsulError, ConsulState, DoubleConfig

__all__ = ["ConsulDouble", "ConsulError", "ConsulState", "DoubleConfig", "create_app"]
