"""Every mistake on the command line gets one line naming what is wrong and how to fix it, an
exit status of 2 (1 when a router could not be reached), and never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import REPO_ROOT


def toolmesh(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def one_clear_line(run: subprocess.CompletedProcess[str], status: int, *words: str) -> None:
    assert run.returncode == status, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    for word in words:
        assert word in run.stderr, (word, run.stderr)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"port = [\n", ("is not valid TOML", "line")),
        (b'port = "\xff\xfe"\n', ("is not UTF-8 text",)),
        (
            b'tools_mode = "nope"\n',
            ("tools_mode", "TOOLMESH_TOOLS_MODE or `tools_mode` in /"),
        ),
    ],
)
def test_a_bad_settings_file_is_named_with_its_problem(
    tmp_path: Path, content: bytes, words: tuple[str, ...]
) -> None:
    settings = tmp_path / "toolmesh.toml"
    settings.write_bytes(content)
    run = toolmesh("router", "--settings", str(settings), "--port", "0")
    one_clear_line(run, 2, str(settings), *words)
    assert "--tools-mode" not in run.stderr  # no such option: the message names none


def test_a_missing_settings_file_stops_the_router_instead_of_being_ignored(tmp_path: Path) -> None:
    one_clear_line(toolmesh("router", "--settings", str(tmp_path / "nope.toml")), 2, "does not exist")
    one_clear_line(toolmesh("router", "--settings", str(tmp_path)), 2, "cannot be read", "Is a directory")
    run = toolmesh("registrar", "--settings", str(tmp_path / "nope.toml"), "--name", "x", "--url", "http://a/mcp",
                   "--etcd", "http://127.0.0.1:1")  # fmt: skip
    one_clear_line(run, 2, "toolmesh registrar: settings file", "does not exist")


def test_an_option_given_on_the_command_line_is_named_as_the_option(tmp_path: Path) -> None:
    one_clear_line(toolmesh("router", "--page-size", "-1", "--port", "0"), 2, "check --page-size")


@pytest.mark.parametrize("url", ["notaurl", "http://[::1", "ftp://host", "http://127.0.0.1:99999"])
@pytest.mark.parametrize("command", [("status",), ("usage",), ("capabilities", "suggest")])
def test_a_bad_router_url_is_named(command: tuple[str, ...], url: str) -> None:
    run = toolmesh(*command, "--router", url)
    one_clear_line(run, 1, f"--router {url!r} is not")


def test_an_unreachable_router_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there after
    one_clear_line(toolmesh("status", "--router", f"http://127.0.0.1:{port}"), 1, "cannot reach")


def test_keys_refuse_a_directory_and_empty_names(tmp_path: Path) -> None:
    run = toolmesh("keys", "--file", str(tmp_path), "list")
    one_clear_line(run, 2, "cannot use", "as the keys file", "Is a directory")
    assert run.stdout == ""  # no table header before the error
    keys = tmp_path / "keys.json"
    for args in (
        ("--agent", ""),
        ("--agent", " bot "),
        ("--agent", "bot", "--group", ""),
        ("--agent", "a\x07b"),
    ):
        one_clear_line(toolmesh("keys", "--file", str(keys), "create", *args), 2, "is not a name")
    assert not keys.exists()  # nothing half-done
    created = toolmesh("keys", "--file", str(keys), "create", "--agent", "ci-bot", "--group", "ops")
    assert created.returncode == 0 and created.stdout.startswith("tmk_"), created.stderr


def test_a_port_in_use_names_host_and_port(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text('{"mcpServers": {}}')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = toolmesh("router", "--port", str(port), "--config", str(catalog))
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr and "--host or --port" in run.stderr, run.stderr
