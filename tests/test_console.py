"""The web console driven in a real headless Chromium (Debian's `chromium`, driven by Playwright
over its own protocol; Playwright cannot download browsers here): it refuses a non-admin, loads
for an admin, shows a server going down within 2 s without a reload, and approves a quarantined
server (CSRF-protected, audited). Screenshots (console-*.png) go to the test's temporary
directory, or, with TOOLMESH_CONSOLE_SCREENSHOTS=1, to docs/ (the ones kept there).

The browser is found (TOOLMESH_CHROMIUM, `chromium` on PATH, /usr/lib/chromium/chromium) or
installed with `apt-get install -y chromium` where that is possible; otherwise the test fails
saying what to install. It never skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from router.up.processes import ManagedProcess, free_port
from tests.conftest import wait_ready
from tests.guard_support import guarded_env
from tests.support.mcp_http import call_tool
from tests.support.procs import sample_server_http, sample_server_sse, write_catalog
from tests.support.registries import registry_server
from tests.support.waits import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
BINARIES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str:
    """The Chromium to drive; installed with apt-get when missing and possible, else a clear failure."""

    def located() -> str | None:
        given = os.environ.get("TOOLMESH_CHROMIUM")
        if given:
            return given
        for name in BINARIES:
            path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
            if path:
                return path
        return None

    found = located()
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=900, check=False
        )
        found = located()
    if found is None:
        pytest.fail(
            "no Chromium to drive the console with: install Debian's `chromium` "
            "(apt-get install -y chromium) or point TOOLMESH_CHROMIUM at a Chromium binary"
        )
    return found


def http(method: str, url: str, body: bytes | None = None, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextlib.contextmanager
def console_router(tmp_path: Path, catalog: Path, etcd: str, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    argv = [
        sys.executable, "-m", "router", "router", "--config", str(catalog), "--etcd", etcd,
        "--port", str(port), "--log-format", "text", "--log-level", "debug",
    ]  # fmt: skip
    environment = {
        "TOOLMESH_CATALOG_POLL_INTERVAL": "0.2", "TOOLMESH_RECONNECT_MAX": "1",
        "TOOLMESH_REGISTRY_BACKOFF_MAX": "0.5", **env,
    }  # fmt: skip
    with ManagedProcess(argv, name="router", env=environment, log_dir=tmp_path) as process:
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, f"{base}/readyz")
        yield base


async def test_the_console_in_a_real_browser(tmp_path: Path) -> None:
    shots = DOCS_DIR if os.environ.get("TOOLMESH_CONSOLE_SCREENSHOTS") else tmp_path
    chromium = find_chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the console test needs `playwright` (pip install -e '.[test]')")
    policy = {
        "default": "allow",
        "namespaces": {"oncall": {"title": "On call", "servers": ["gone"]}},
        "overrides": [{"tool": "gone__slow", "description": "Waits a while."}],
    }
    keys, env = guarded_env(tmp_path, {"ops": ["admin"], "guest": ["guests"]}, policy)
    bearer = {"Authorization": f"Bearer {keys['ops']}"}
    drift = f"rug{time.monotonic_ns() % 10**6}"
    with (
        registry_server("etcd") as etcd,
        sample_server_sse("gone", log_dir=tmp_path) as (gone_url, gone),
        sample_server_http(drift, log_dir=tmp_path) as (drift_url, _),
    ):
        catalog = write_catalog(tmp_path, {"gone": {"url": gone_url, "type": "sse"}})
        registrar = [
            sys.executable, "-m", "router", "registrar", "--name", drift, *etcd.flag, "--url", drift_url,
            "--quarantine", "--probe-interval", "0.5", "--ttl", "2", "--log-format", "text",
        ]  # fmt: skip
        with (
            console_router(tmp_path, catalog, etcd.url, env) as base,
            ManagedProcess(registrar, name="registrar", log_dir=tmp_path),
        ):
            console = f"{base}/console"

            def served() -> set[str]:
                status, text = http("GET", f"{base}/v1/tools", **bearer)
                return {tool["name"] for tool in json.loads(text)["tools"]} if status == 200 else set()

            wait_until(lambda: {f"{drift}__echo", "gone__echo"} <= served(), 30, "both servers served")

            # Without a browser: a non-admin is refused, a bad CSRF token too.
            status, text = http("GET", console, Authorization=f"Bearer {keys['guest']}")
            assert status == 403 and "not in an admin group" in text
            assert http("GET", console)[0] == 401
            # The live fragment the page polls refuses in the one JSON error shape.
            status, text = http("GET", f"{console}/live")
            assert status == 401 and "sign in again" in json.loads(text)["error"]["message"], text
            status, text = http("GET", f"{console}/live", Authorization="Bearer not-a-key")
            assert status == 401 and "sign-in refused" in json.loads(text)["error"]["message"], text
            status, text = http("GET", f"{console}/live", Authorization=f"Bearer {keys['guest']}")
            assert status == 403 and "not in an admin group" in json.loads(text)["error"]["message"], text
            form = urllib.parse.urlencode({"server": drift, "hash": "0" * 64, "csrf": "forged"}).encode()
            status, text = http("POST", f"{console}/approve", form, **bearer)
            assert status == 403 and "stale or came from another site" in text

            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
                )
                try:
                    await drive(browser, base, keys, (drift, drift_url), gone, tmp_path, shots)
                finally:
                    await browser.close()


async def sign_in(page: Any, base: str, key: str) -> Any:
    await page.goto(f"{base}/console")
    assert await page.locator("h2", has_text="Sign in").count() == 1
    await page.fill("input[name=key]", key)
    async with page.expect_navigation():
        await page.click("button:has-text('Sign in')")
    return page


async def drive(
    browser: Any,
    base: str,
    keys: dict[str, str],
    drifting: tuple[str, str],
    gone: ManagedProcess,
    tmp: Path,
    shots: Path,
) -> None:
    drift, drift_url = drifting
    # A non-admin signs in and is refused.
    guest = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await sign_in(await guest.new_page(), base, keys["guest"])
    assert "not in an admin group" in await page.content()
    await page.screenshot(path=str(shots / "console-refused.png"))
    await guest.close()

    # The admin gets the console: servers, instances, health, era, breaker, definitions.
    admin = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await sign_in(await admin.new_page(), base, keys["ops"])
    assert page.url.endswith("/console")
    row = page.locator('#instances tr[data-server="gone"]')
    await row.locator("td.health", has_text="ready").wait_for(timeout=5000)
    assert "sse" in await row.inner_text() and "2025-11-25" in await row.inner_text()
    status, _ = http(
        "POST", f"{base}/v1/tools/gone__echo/call", b'{"text": "hi"}',
        **{"Authorization": f"Bearer {keys['ops']}", "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 200
    await page.locator("#calls td", has_text="gone__echo").first.wait_for(timeout=5000)
    usage = page.locator("#usage tbody tr", has_text="gone__echo")
    await usage.first.wait_for(timeout=5000)
    assert "ops" in await usage.first.inner_text()
    policy = await page.locator("#policy").inner_text()
    assert "/mcp/oncall" in policy and "On call" in policy, policy
    assert "gone__slow" in policy and "Waits a while." in policy, policy
    await page.screenshot(path=str(shots / "console-1280.png"), full_page=True)

    # Search narrows the tools (server-side, so it works without the script too).
    await page.fill("input[name=q]", "echo")
    async with page.expect_navigation():
        await page.press("input[name=q]", "Enter")
    listed = await page.locator("#tools tbody tr").all_inner_texts()
    assert listed and all("echo" in line.lower() for line in listed), listed
    # ...ranked by the router's tool search, which stems ("adding" finds `add`) as plain matching cannot.
    await page.fill("input[name=q]", "adding numbers")
    async with page.expect_navigation():
        await page.press("input[name=q]", "Enter")
    first = await page.locator("#tools tbody tr").first.inner_text()
    assert "__add" in first, first

    # A server going down shows within 2 s, without a reload.
    await page.goto(f"{base}/console")
    gone.stop()
    stopped = time.monotonic()
    await page.locator('#instances tr[data-server="gone"] td.health', has_text="down").wait_for(timeout=2000)
    assert time.monotonic() - stopped < 2.0
    await page.screenshot(path=str(shots / "console-down.png"), full_page=True)

    # The drift server changes its tools: the registrar quarantines it; the admin approves it.
    call_tool(drift_url, "grow", {})  # behind the router's back
    approve = page.locator(f'#drift tr[data-server="{drift}"] button', has_text="Approve")
    await approve.wait_for(timeout=20000)
    await page.screenshot(path=str(shots / "console-drift.png"), full_page=True)
    async with page.expect_navigation():
        await approve.click()
    await page.locator("#drift p", has_text="none").wait_for(timeout=20000)
    row = page.locator(f'#instances tr[data-server="{drift}"]')
    await row.locator("td", has_text="ok").first.wait_for(timeout=20000)
    audit = [json.loads(line) for line in (tmp / "audit.jsonl").read_text().splitlines()]
    approvals = [r for r in audit if r["method"] == "console/approve"]
    assert approvals and approvals[-1]["agent"] == "ops" and approvals[-1]["outcome"] == "ok"

    # On a phone: the same page, nothing wider than the screen.
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = await sign_in(await phone.new_page(), base, keys["ops"])
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    await page.screenshot(path=str(shots / "console-phone.png"), full_page=True)
    await phone.close()
    await admin.close()
