"""`toolmesh router` says where it listens, in one line on stdout, once it is ready."""

from __future__ import annotations

import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from router.announce import listening_line
from router.up.processes import ManagedProcess
from tests.support.procs import write_catalog

LINE = re.compile(
    r"toolmesh listening on (?P<mcp>http://\S+/mcp) "
    r"\(console (?P<console>http://\S+/console), metrics (?P<metrics>http://\S+/metrics)\)"
)


def test_the_router_prints_where_it_listens_once_ready_and_the_addresses_answer(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path, {})
    argv = [sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", "0"]
    with ManagedProcess(argv, name="router", log_dir=tmp_path) as process:
        found = process.wait_log(LINE, timeout=30)
        # --port 0: the line names the port the system chose, and it answers at once.
        assert not found.group("mcp").endswith(":0/mcp")
        base = found.group("mcp").removesuffix("/mcp")
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(found.group("metrics"), timeout=5) as response:
            assert b"toolmesh_" in response.read()
        try:  # the console answers (asking for an admin's credentials)
            urllib.request.urlopen(found.group("console"), timeout=5)
            raise AssertionError("the console let an anonymous visitor in")
        except urllib.error.HTTPError as error:
            assert error.code == 401 and b"Sign in" in error.read()
        assert len(LINE.findall(process.log_text())) == 1, "said once"


def test_the_line_brackets_an_ipv6_host() -> None:
    assert listening_line("::1", 9000).startswith("toolmesh listening on http://[::1]:9000/mcp")
    assert listening_line("127.0.0.1", 80) == (
        "toolmesh listening on http://127.0.0.1:80/mcp "
        "(console http://127.0.0.1:80/console, metrics http://127.0.0.1:80/metrics)"
    )
