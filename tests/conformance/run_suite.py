"""Run the official MCP conformance suite (npm ``@modelcontextprotocol/conformance``) against a server.

Usage, from the repository root:

    python tests/conformance/run_suite.py --url http://127.0.0.1:PORT/mcp --spec-version 2025-11-25
    python tests/conformance/run_suite.py --backend                  # start our backend, run both versions
    python tests/conformance/run_suite.py --backend --via-router     # ...then again through toolmesh
    python tests/conformance/run_suite.py --backend sdk --via-router --upstream auto

``--spec-version`` may be repeated; without it both 2025-11-25 and 2026-07-28 run. ``--backend`` starts
a backend on a free loopback port instead of testing ``--url``: ``conformance`` (the default,
``tests.conformance.backend``, written to pass every scenario) or ``sdk`` (``tests.conformance.sdk_backend``,
an ``MCPServer`` written as the SDK's users write servers). Each version runs
``conformance server --suite all`` with the backend's ``expected-failures-<version>.yml`` (``sdk-`` in
front for the SDK backend) as the baseline, so the exit status is 0 only when every failure is listed
there and no listed one passes.

With ``--via-router`` the backend is also put behind ``toolmesh router --prefix never`` and each
version runs a second time against the router; the exit status is then non-zero as well when a
check that passed directly does not pass through the router (they are compared one by one).
``--upstream`` says which era the router speaks to the backend: ``client`` (the default: the client's
own era, pinned per run), ``auto`` (the router decides, as deployed), ``legacy`` or ``2026-07-28``.

Node 22 (npm package ``node-linux-<arch>``) and the suite are installed into ``.cache/`` on first use,
under a file lock so concurrent runs install once. Results land in ``--output-dir`` (default
``.cache/conformance-results``), one timestamped folder per version with the suite's log and checks.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from router.up.processes import ManagedProcess, ProcessError, free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
NODE_PREFIX = CACHE / "node22"
SUITE_PREFIX = CACHE / "conformance"
SUITE_PACKAGE = "@modelcontextprotocol/conformance"
SUITE_VERSION = "0.2.0-alpha.12"
NODE_MAJOR = 22
SPEC_VERSIONS = ("2025-11-25", "2026-07-28")
# The era the router speaks to the (dual-era) backend in each run: the client's own, so that the
# router is judged as a relay; era bridging is covered by tests/test_relay.py.
UPSTREAM = {"2025-11-25": "legacy", "2026-07-28": "2026-07-28"}
# The backends this script can start: the module to run and the prefix of its baseline files.
BACKENDS = {
    "conformance": ("tests.conformance.backend", ""),
    "sdk": ("tests.conformance.sdk_backend", "sdk-"),
}
RUN_TIMEOUT = 900.0
"""Seconds one spec version's run may take (the whole suite normally needs under ten)."""


class SetupError(RuntimeError):
    """The suite or Node could not be installed or started."""


# --- Installation -----------------------------------------------------------------------------------


@contextlib.contextmanager
def install_lock() -> Iterator[None]:
    """Hold an exclusive lock on ``.cache/conformance-install.lock`` (blocks until it is free)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "conformance-install.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def node_major(node: Path | str) -> int | None:
    """The major version of a Node binary, or None if it does not run."""
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.stdout.strip())
    return int(match.group(1)) if match else None


def npm_install(prefix: Path, spec: str) -> None:
    """``npm install --prefix PREFIX SPEC`` with the machine's npm."""
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError("npm is not installed; it is needed to fetch Node 22 and the conformance suite")
    prefix.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", spec]
    print(f"+ {' '.join(command)}", flush=True)
    result = subprocess.run(command, check=False, timeout=600)
    if result.returncode != 0:
        raise SetupError(f"npm install {spec} failed with exit code {result.returncode}")


def node_package() -> str:
    """The npm package that ships a Node binary for this machine."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if sys.platform != "linux" or arch is None:
        raise SetupError(f"no Node {NODE_MAJOR} package known for {sys.platform}/{platform.machine()}")
    return f"node-linux-{arch}"


def ensure_node() -> Path:
    """A Node >= 22 binary: the machine's own if new enough, else one installed into ``.cache/node22``."""
    system = shutil.which("node")
    if system and (node_major(system) or 0) >= NODE_MAJOR:
        return Path(system)
    package = node_package()
    binary = NODE_PREFIX / "node_modules" / package / "bin" / "node"
    if (node_major(binary) or 0) < NODE_MAJOR:
        npm_install(NODE_PREFIX, f"{package}@{NODE_MAJOR}")
    if (node_major(binary) or 0) < NODE_MAJOR:
        raise SetupError(f"{binary} is not a working Node {NODE_MAJOR}")
    return binary


def ensure_suite(version: str) -> Path:
    """The suite's CLI entry script, installing ``SUITE_PACKAGE@version`` if another version is there."""
    package_dir = SUITE_PREFIX / "node_modules" / SUITE_PACKAGE
    manifest = package_dir / "package.json"

    def installed() -> str | None:
        try:
            return str(json.loads(manifest.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return None

    if installed() != version:
        npm_install(SUITE_PREFIX, f"{SUITE_PACKAGE}@{version}")
    if installed() != version:
        raise SetupError(f"{SUITE_PACKAGE}@{version} is not installed under {SUITE_PREFIX}")
    bin_entry = json.loads(manifest.read_text())["bin"]
    script = bin_entry if isinstance(bin_entry, str) else bin_entry["conformance"]
    return package_dir / script


# --- The backend under test -------------------------------------------------------------------------


@contextlib.contextmanager
def listening(what: str, command: list[str], port: int, log_dir: Path) -> Iterator[ManagedProcess]:
    """Run `command` (output to `log_dir/<what>.log`) until it listens on `port`; stop it (by PID) afterwards."""
    with ManagedProcess(command, name=what, log_dir=log_dir, cwd=ROOT) as process:
        try:
            process.wait_port(port, timeout=30)
        except ProcessError as error:
            raise SetupError(f"the {what} did not start: {error}") from None
        yield process


@contextlib.contextmanager
def running_router(backend_url: str, work_dir: Path, protocol: str = "auto") -> Iterator[str]:
    """Start ``toolmesh router --prefix never`` in front of `backend_url`; yield the router's URL.

    `protocol` is the era the router speaks to the backend ("legacy", "2026-07-28" or "auto")."""
    work_dir.mkdir(parents=True, exist_ok=True)
    catalog = work_dir / "catalog.json"
    entry = {"url": backend_url, **({"protocol": protocol} if protocol != "auto" else {})}
    catalog.write_text(json.dumps({"mcpServers": {"conformance": entry}}))
    port = free_port()
    command = [sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", str(port)]
    command += ["--prefix", "never", "--log-format", "text", "--log-level", "info"]
    with listening("router", command, port, work_dir) as process:
        try:
            process.wait_until(lambda: _ready(f"http://127.0.0.1:{port}/readyz"), 30, "/readyz")
        except ProcessError as error:
            raise SetupError(f"the router was not ready: {error}") from None
        yield f"http://127.0.0.1:{port}/mcp"


def _ready(url: str) -> bool:
    """The router's /readyz answers 200 (catalog loaded, backend connected)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200 and b'"ready"' in response.read()


@contextlib.contextmanager
def running_backend(log_dir: Path, backend: str = "conformance") -> Iterator[str]:
    """Start one of `BACKENDS` on a free port; yield its URL; stop it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", BACKENDS[backend][0], "--port", str(port)]
    with listening("backend", command, port, log_dir):
        yield f"http://127.0.0.1:{port}/mcp"


# --- Running the suite ------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One spec version's outcome."""

    spec_version: str
    exit_code: int
    passed: int
    failed: int
    seconds: float
    output_dir: Path

    def checks(self) -> dict[tuple[str, str, int], str]:
        """Every check's status, keyed by (scenario, check id, n-th occurrence of that id)."""
        return collect_checks(self.output_dir)


def collect_checks(output_dir: Path) -> dict[tuple[str, str, int], str]:
    """Read the suite's per-scenario ``checks.json`` files under `output_dir`."""
    found: dict[tuple[str, str, int], str] = {}
    for path in sorted(output_dir.glob("*/checks.json")):
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$", "", path.parent.name).removeprefix("server-")
        seen: dict[str, int] = {}
        for check in json.loads(path.read_text()):
            n = seen[check["id"]] = seen.get(check["id"], 0) + 1
            found[(scenario, check["id"], n)] = check["status"]
    return found


def lost_through_router(direct: RunResult, routed: RunResult) -> list[str]:
    """Checks that pass directly but not through the router, as readable lines."""
    through = routed.checks()
    return [
        f"{scenario}:{check_id}#{n}: {through.get((scenario, check_id, n), 'NOT RUN')}"
        for (scenario, check_id, n), status in sorted(direct.checks().items())
        if status == "SUCCESS" and through.get((scenario, check_id, n)) != "SUCCESS"
    ]


def run_version(
    node: Path,
    cli: Path,
    url: str,
    spec_version: str,
    output_root: Path,
    label: str = "direct",
    backend: str = "conformance",
) -> RunResult:
    """Run ``conformance server --suite all`` for one spec version, teeing its output to a log file.

    A direct run is judged against `backend`'s baseline; other runs only report their checks."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    output_dir = output_root / f"{spec_version}-{label}-{stamp}"
    output_dir.mkdir(parents=True, exist_ok=True)
    baseline = baseline_path(backend, spec_version)
    command = [str(node), str(cli), "server", "--url", url, "--suite", "all", "--spec-version", spec_version]
    command += ["--output-dir", str(output_dir)]
    if baseline.exists() and label == "direct":
        command += ["--expected-failures", str(baseline)]
    print(f"\n+ {' '.join(command)}", flush=True)
    env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    started = time.monotonic()
    passed = failed = 0
    with (output_dir / "suite.log").open("w") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(RUN_TIMEOUT, kill)
        watchdog.start()
        try:
            for line in process.stdout:
                sys.stdout.write(line)
                log.write(line)
                if total := re.match(r"Total: (\d+) passed, (\d+) failed", line.strip()):
                    passed, failed = int(total.group(1)), int(total.group(2))
            exit_code = process.wait()
        finally:
            watchdog.cancel()
        if timed_out.is_set():
            print(f"the suite was killed after {RUN_TIMEOUT:.0f} s", file=sys.stderr)
            exit_code = exit_code or 1
    return RunResult(spec_version, exit_code, passed, failed, time.monotonic() - started, output_dir)


def baseline_path(backend: str, spec_version: str) -> Path:
    """The expected-failures file of one backend and spec version."""
    return HERE / f"{BACKENDS[backend][1]}expected-failures-{spec_version}.yml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the MCP conformance suite against a server.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="the server's Streamable HTTP endpoint, e.g. http://127.0.0.1:8000/mcp")
    target.add_argument(
        "--backend",
        nargs="?",
        const="conformance",
        choices=sorted(BACKENDS),
        help="start a backend (default: conformance) and test it",
    )
    parser.add_argument(
        "--via-router",
        action="store_true",
        help="also run through toolmesh (prefix never) in front of the server and compare check by check",
    )
    parser.add_argument(
        "--upstream",
        choices=("client", "auto", "legacy", "2026-07-28"),
        default="client",
        help="the era the router speaks to the backend (default: the client's own, pinned per run)",
    )
    parser.add_argument(
        "--spec-version",
        action="append",
        choices=SPEC_VERSIONS,
        help="spec version to test (repeatable; default: all of them)",
    )
    parser.add_argument("--output-dir", type=Path, default=CACHE / "conformance-results")
    parser.add_argument(
        "--suite-version", default=SUITE_VERSION, help=f"npm version (default {SUITE_VERSION})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Install what is missing, run each requested spec version, print a summary; return the exit code."""
    args = parse_args(argv)
    versions = args.spec_version or list(SPEC_VERSIONS)
    output_root = args.output_dir.resolve()
    try:
        with install_lock():
            node = ensure_node()
            cli = ensure_suite(args.suite_version)
        lost: list[str] = []
        with contextlib.ExitStack() as stack:
            url = args.url
            backend = args.backend or "conformance"
            if args.backend:
                url = stack.enter_context(running_backend(output_root, backend))
            results = [
                run_version(node, cli, url, version, output_root, backend=backend) for version in versions
            ]
            if args.via_router:
                for direct in list(results):
                    version = direct.spec_version
                    upstream = UPSTREAM[version] if args.upstream == "client" else args.upstream
                    with running_router(url, output_root / f"router-{version}", upstream) as router_url:
                        routed = run_version(node, cli, router_url, version, output_root, "router")
                    routed.exit_code = 0  # judged by the comparison below, not the baseline
                    missing = lost_through_router(direct, routed)
                    lost += [f"{direct.spec_version} {line}" for line in missing]
                    routed.exit_code = 1 if missing else 0
                    results.append(routed)
    except SetupError as error:
        print(f"conformance setup failed: {error}", file=sys.stderr)
        return 2

    print("\n=== Conformance summary ===")
    for r in results:
        verdict = "ok" if r.exit_code == 0 else f"FAILED (exit {r.exit_code})"
        print(
            f"{r.spec_version} {r.output_dir.name.split('-')[3]}: {r.passed} passed, {r.failed} failed in {r.seconds:.1f} s, {verdict}; {r.output_dir}"
        )
    print(f"conformance: {sum(r.passed for r in results)} passed, {sum(r.failed for r in results)} failed")
    if lost:
        print("checks that pass directly but not through the router:")
        print("\n".join(f"  {line}" for line in lost))
    return max((r.exit_code for r in results), default=0)


if __name__ == "__main__":
    sys.exit(main())
