"""`compose/` checked without a Docker engine.

What can be proved here is proved with the real tools: the compose file parses and everything it
names exists, images are pinned, the router and registrar commands it runs are accepted by our own
command-line parser, HAProxy's config passes `haproxy -c`, Prometheus's passes `promtool check
config`, and every dashboard query is valid PromQL (`promtool check rules`) naming a metric a
running router really exports.

`haproxy` and `promtool` come from Debian (packages `haproxy` and `prometheus`); `scripts/test`
installs them when it runs as root. Where they are missing these tests FAIL, on purpose: a check
that silently skips is a check nobody runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from router.cli import _parser
from router.up.processes import free_port
from tests.conftest import run_router
from tests.support.balancing import assert_session_affinity, haproxy_sees_up, replicas_behind
from tests.support.cluster import CLUSTER_KEY, nats_server
from tests.support.features import cli_has

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose"
COMPOSE_FILE = COMPOSE / "docker-compose.yml"
HAPROXY_CFG = COMPOSE / "haproxy" / "haproxy.cfg"
PROMETHEUS_CFG = COMPOSE / "prometheus" / "prometheus.yml"
DASHBOARDS = COMPOSE / "grafana" / "dashboards"
DATASOURCES = COMPOSE / "grafana" / "provisioning" / "datasources"

# `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`: compose's interpolation forms.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
PINNED_TAG = re.compile(r":v?\d+\.\d+\.\d+(-[a-z0-9.]+)?$")


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed, so {COMPOSE.name}/ cannot be checked. It comes from Debian's "
            f"`{package}` package: scripts/test installs it when run as root; otherwise run "
            f"`apt-get install {package}` and try again."
        )
    return path


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's variable substitution, with defaults (and a stand-in for required values)."""
    env = env or {}

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in env:
            return env[name]
        if op in (":-", "-"):
            return arg or ""
        if op in (":?", "?"):
            return f"<{name}>"
        return ""

    return INTERPOLATION.sub(one, value.replace("$$", "\x00")).replace("\x00", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


# -- the compose file ---------------------------------------------------------------------------


def test_the_stack_has_every_part_the_issue_asks_for(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in ("consul", "nats", "etcd", "router", "haproxy", "notes", "notes-registrar", "units",
                 "prometheus", "grafana"):  # fmt: skip
        assert name in svc, f"compose has no {name} service"
    assert svc["router"]["deploy"]["replicas"] == 3
    assert svc["etcd"].get("profiles") == ["etcd"], "etcd must be optional (a profile)"
    consul = " ".join(svc["consul"]["command"])
    assert "-server" in consul and "-ui" in consul, "Consul must run in server mode with its UI"
    assert "--jetstream" in svc["nats"]["command"]
    nats_version = tuple(int(p) for p in svc["nats"]["image"].split(":")[1].split("-")[0].split("."))
    assert nats_version >= (2, 11), "per-key TTLs need NATS >= 2.11"


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    built = {s["image"] for s in services(compose).values() if "build" in s and "image" in s}
    for name, service in services(compose).items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"service {name} has neither image nor build"
            continue
        if image in built:
            continue  # built from this repository by another service
        assert PINNED_TAG.search(image), f"service {name}: image {image!r} is not pinned to a version"


def test_every_file_the_compose_file_names_exists(compose: dict[str, Any]) -> None:
    missing: list[str] = []
    for name, service in services(compose).items():
        build = service.get("build")
        if build is not None:
            context = COMPOSE / build["context"]
            if not context.is_dir():
                missing.append(f"{name}: build context {context}")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                missing.append(f"{name}: dockerfile {dockerfile}")
            for line in dockerfile.read_text().splitlines() if dockerfile.is_file() else []:
                if line.startswith("COPY ") and "--from=" not in line:
                    for source in line.split()[1:-1]:
                        if not (context / source).exists():
                            missing.append(f"{name}: {dockerfile.name} copies {source}, which does not exist")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")) and not (COMPOSE / source).exists():
                missing.append(f"{name}: volume source {source}")
        for env_file in service.get("env_file", []):
            if not (COMPOSE / env_file).exists():
                missing.append(f"{name}: env_file {env_file}")
        command = service.get("command", [])
        if isinstance(command, list):
            for arg in command:
                if isinstance(arg, str) and arg.startswith("examples/") and not (ROOT / arg).is_file():
                    missing.append(f"{name}: runs {arg}, which does not exist")
    assert not missing, "compose refers to files that do not exist:\n" + "\n".join(missing)


def test_named_volumes_and_dependencies_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    svc = services(compose)
    for name, service in svc.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"service {name} uses volume {source}, not declared"
        depends = service.get("depends_on", [])
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in svc, f"service {name} depends on unknown service {other}"


# What the stack runs that other issues deliver; until they are on this branch the check below
# cannot pass, and says so instead of failing. Once they are, it runs in full by itself.
REGISTRY_CLI = cli_has("registrar") and cli_has("router", "--consul") and cli_has("router", "--etcd")
NATS_CLI = cli_has("router", "--nats")


@pytest.mark.skipif(
    not (REGISTRY_CLI and NATS_CLI),
    reason="needs `toolmesh registrar` and `router --consul/--etcd` (issue 4) and `router --nats` (issue 5)",
)
@pytest.mark.parametrize("env_file", [None, "etcd.env"])
def test_toolmesh_commands_are_accepted_by_the_cli(compose: dict[str, Any], env_file: str | None) -> None:
    """Every `toolmesh ...` a container runs parses with our own parser, with Consul and with etcd."""
    env: dict[str, str] = {}
    if env_file is not None:
        for line in (COMPOSE / env_file).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key.strip()] = value.strip()
        assert env.get("COMPOSE_PROFILES") == "etcd"
    parser = _parser()
    checked = 0
    for name, service in services(compose).items():
        entry = service.get("entrypoint")
        command = [interpolate(str(arg), env) for arg in service.get("command", [])]
        image = service.get("image", "")
        if image == "toolmesh/router:local" and entry is None:
            argv = command  # the image's entrypoint is `toolmesh`
        elif command[:1] == ["toolmesh"]:
            argv = command[1:]
        else:
            continue
        if "--" in argv:  # `toolmesh registrar ... -- COMMAND ARGS`: main() cuts the child off first
            cut = argv.index("--")
            argv, child = argv[:cut], argv[cut + 1 :]
            assert argv[0] == "registrar" and child, f"service {name}: only a registrar runs a child"
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"service {name}: `toolmesh {' '.join(argv)}` is refused by router/cli.py")
        if env_file is not None:
            assert not any("consul" in arg for arg in argv), f"service {name} still points at Consul"
        checked += 1
    assert checked >= 3, "expected the routers and two registrars to run toolmesh"


def test_every_toolmesh_variable_names_a_real_setting(compose: dict[str, Any]) -> None:
    """A misspelt TOOLMESH_* variable would be ignored silently by the container: catch it here."""
    import router.settings as settings_module

    models = [
        getattr(settings_module, n)
        for n in dir(settings_module)
        if n.endswith("Settings") and n != "BaseSettings"
    ]
    known = {f"TOOLMESH_{field.upper()}" for model in models for field in getattr(model, "model_fields", {})}
    unknown = [
        f"{name}: {variable}"
        for name, service in services(compose).items()
        for variable in (service.get("environment") or {})
        if variable.startswith("TOOLMESH_") and variable not in known
    ]
    assert not unknown, "not settings of any toolmesh command:\n" + "\n".join(unknown)


def test_router_replicas_share_a_required_cluster_key(compose: dict[str, Any]) -> None:
    key = services(compose)["router"]["environment"]["TOOLMESH_CLUSTER_KEY"]
    match = INTERPOLATION.fullmatch(key)
    assert match is not None and match["op"] == ":?", "the cluster key must be required, never defaulted"


# -- HAProxy ------------------------------------------------------------------------------------


def test_haproxy_config_passes_haproxy_check() -> None:
    haproxy = need_tool("haproxy", "haproxy")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Configuration file is valid" in output
    # The only warnings allowed: the replicas' Docker DNS name does not resolve outside Docker.
    warnings = [line for line in output.splitlines() if "[WARNING]" in line or "[ALERT]" in line]
    unexpected = [w for w in warnings if "could not resolve address 'router'" not in w]
    assert not unexpected, "\n".join(unexpected)


def loopback_haproxy_config(router_ports: list[int], port: int, stats_port: int) -> str:
    """The compose config with only its addresses changed: replicas on loopback instead of
    Docker's DNS, listeners on free loopback ports. Everything else is tested as shipped."""
    text = HAPROXY_CFG.read_text()
    text = re.sub(r"\nresolvers docker\n(    .*\n)+", "\n", text)
    text = text.replace(" resolvers docker resolve-prefer ipv4 init-addr last,libc,none", "")
    servers = "\n".join(f"    server router{i} 127.0.0.1:{p}" for i, p in enumerate(router_ports, 1))
    text = text.replace("    server-template router 1-10 router:8080", servers)
    text = text.replace("bind :8080", f"bind 127.0.0.1:{port}").replace(
        "bind :8404", f"bind 127.0.0.1:{stats_port}"
    )
    assert "resolvers" not in text and "router:8080" not in text and ":8080" not in text
    return text


def test_haproxy_as_shipped_keeps_each_session_on_one_replica(tmp_path: Path) -> None:
    """Real HAProxy with the compose config, in front of two real routers."""
    haproxy = need_tool("haproxy", "haproxy")
    ports, port, stats = [free_port(), free_port()], free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(loopback_haproxy_config(ports, port, stats))
    with replicas_behind(
        lambda _: [haproxy, "-db", "-f", str(config)],
        ports,
        haproxy_sees_up(f"http://127.0.0.1:{stats}", 2),
        tmp_path,
    ):
        assert_session_affinity(f"http://127.0.0.1:{port}/mcp", [f"http://127.0.0.1:{p}" for p in ports])


def test_haproxy_hashes_on_the_session_id_and_checks_readiness() -> None:
    lines = [line.split("#")[0].strip() for line in HAPROXY_CFG.read_text().splitlines()]
    assert "balance hdr(mcp-session-id)" in lines
    assert "hash-type consistent" in lines
    assert "http-check send meth GET uri /readyz" in lines
    timeouts = {parts[1]: parts[2] for parts in (line.split() for line in lines) if parts[:1] == ["timeout"]}
    for name in ("client", "server", "tunnel"):
        assert timeouts.get(name) == "1h", f"timeout {name} must be long for SSE streams"


# -- Prometheus and Grafana ---------------------------------------------------------------------


def test_prometheus_config_passes_promtool() -> None:
    promtool = need_tool("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CFG)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(PROMETHEUS_CFG.read_text())["scrape_configs"]}
    assert jobs["toolmesh"]["dns_sd_configs"][0]["names"] == ["router"], "scrape every router replica"


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                yield nested["title"], target["expr"]


def test_dashboards_load_and_use_the_provisioned_datasource() -> None:
    uids = {
        source["uid"]
        for path in DATASOURCES.glob("*.yml")
        for source in yaml.safe_load(path.read_text())["datasources"]
    }
    assert dashboards(), "no dashboard in compose/grafana/dashboards"
    for path in dashboards():
        dashboard = json.loads(path.read_text())
        titles = [p["title"] for p in dashboard["panels"] if p["type"] != "row"]
        assert len(titles) == len(set(titles)), f"{path.name}: duplicate panel titles"
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] in uids, f"{path.name}: {panel['title']} has no datasource"
                assert panel.get("targets"), f"{path.name}: {panel['title']} has no query"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = need_tool("promtool", "prometheus")
    rules = [
        {"record": f"toolmesh:check:{n}", "expr": expr.replace("$__rate_interval", "1m")}
        for n, (_, expr) in enumerate(
            q for path in dashboards() for q in panel_queries(json.loads(path.read_text()))
        )
    ]
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_series(metrics_text: str) -> set[str]:
    """Every series name a scrape may carry, from the families a router declares (even unused ones)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def feature_metrics_pending() -> dict[str, str]:
    """Dashboard metrics whose feature is not on this branch yet: metric -> why it may be absent.

    A feature counts as present once its settings exist; from then on its metric must be exported,
    so a renamed metric breaks this test rather than a panel."""
    from router.settings import RouterSettings

    fields = RouterSettings.model_fields
    pending: dict[str, str] = {}
    if "breaker_failures" not in fields:
        pending["toolmesh_breaker_state"] = "breakers (issue 6) not on this branch"
    if "ratelimit_max_batch" not in fields:
        pending["toolmesh_ratelimit_rejected_total"] = "rate limits (issue 6) not on this branch"
    if "consul" not in fields:
        pending["toolmesh_catalog_source_up"] = "registry discovery (issue 4) not on this branch"
    return pending


def test_every_dashboard_metric_is_exported_by_a_running_router(tmp_path: Path) -> None:
    """A router with the features the stack turns on (NATS), so that every family is declared."""
    with nats_server(tmp_path) as nats:
        env = {"TOOLMESH_CLUSTER_KEY": CLUSTER_KEY}
        with (
            run_router(tmp_path, {}, "--nats", nats.url, env=env) as router,
            urllib.request.urlopen(f"{router.base_url}/metrics") as response,
        ):
            exported = exported_series(response.read().decode())
    assert "toolmesh_requests_total" in exported  # the scrape itself is sound
    unknown = sorted(
        {
            f"{title}: {name}"
            for path in dashboards()
            for title, expr in panel_queries(json.loads(path.read_text()))
            for name in re.findall(r"\btoolmesh_[a-z0-9_]+", expr)
            if name not in exported and name not in feature_metrics_pending()
        }
    )
    assert not unknown, "dashboard panels query metrics the router does not export:\n" + "\n".join(unknown)
