"""The README's quick start, run as written, in a fresh virtual environment.

The first command of the README (`./scripts/run`) must install everything the embedded default
needs into an empty venv and serve the example catalog; the README's Python example must then list
and call tools through it. The port comes from `TOOLMESH_PORT` (the README says every option reads a
`TOOLMESH_*` variable), so the commands themselves stay exactly as the README writes them.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from router.up.processes import ManagedProcess, alive, descendants, free_port
from tests.conftest import wait_ready

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_quick_start_names_scripts_run_first() -> None:
    first = code_blocks("sh")[0].splitlines()[0].split("#")[0].strip()
    assert first == "./scripts/run"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_quick_start_works_as_written_in_a_fresh_venv(tmp_path: Path) -> None:
    command = code_blocks("sh")[0].splitlines()[0].split("#")[0].strip()
    port = free_port()
    env = {"TOOLMESH_VENV": str(tmp_path / "venv"), "TOOLMESH_PORT": str(port), "TOOLMESH_LOG_FORMAT": "text"}
    # A fresh venv: pip installs everything (from its cache when it can), which takes a while here.
    with ManagedProcess(
        ["bash", "-c", command], name="quickstart", cwd=ROOT, env=env, log_dir=tmp_path
    ) as run:
        wait_ready(run, f"http://127.0.0.1:{port}/readyz", timeout=800)
        children = descendants(run.pid)
        assert children, "the example servers should run as the router's children"

        example = code_blocks("python")[0].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        # With the venv's own python, as the README says: scripts/run installed the SDK there.
        venv_python = tmp_path / "venv" / "bin" / "python"
        result = subprocess.run(
            [str(venv_python), "-c", example], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        listed, called = result.stdout.splitlines()[:2]
        assert "units__convert_length" in listed and "notes__add_note" in listed
        assert "1.609344" in called, called

    # Stopped by PID (the process group scripts/run exec'd the router into): nothing is left.
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], "example servers outlived the router"
