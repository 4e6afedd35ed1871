"""The docs stay true: every setting, catalog field and command-line option is documented, every
relative link points at a file that exists, and the client set-up example works against a router."""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from router.catalog.config_file import ServerEntry
from router.cli import _parser
from router.settings import RegistrarSettings, RouterSettings
from tests.conftest import run_router
from tests.support.procs import sample_server_stdio_entry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HEADING = re.compile(r"^(#+) ", re.MULTILINE)


def section(text: str, title_part: str) -> str | None:
    """The text under the first heading containing `title_part`, up to the next heading of its level."""
    for match in HEADING.finditer(text):
        line_end = text.find("\n", match.start())
        if title_part not in text[match.start() : line_end]:
            continue
        level = len(match[1])
        rest = text[line_end:]
        following = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
        return rest[: following.start()] if following else rest
    return None


def all_docs() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(DOCS.glob("*.md"))}


@pytest.mark.parametrize("model", [RouterSettings, RegistrarSettings])
def test_every_setting_is_in_the_configuration_reference(model: type[BaseSettings]) -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [
        name
        for name in model.model_fields
        if f"`{name}`" not in text or f"`TOOLMESH_{name.upper()}`" not in text
    ]
    assert not missing, f"document these settings in docs/configuration.md: {missing}"


def test_every_catalog_field_is_in_the_configuration_reference() -> None:
    catalog = section((DOCS / "configuration.md").read_text(), "The catalog file")
    assert catalog is not None, "docs/configuration.md lost its catalog file section"
    # A field is written in the file under its alias when it has one (`bearerTokenEnv`).
    names = [field.alias or name for name, field in ServerEntry.model_fields.items()]
    missing = [name for name in names if f"`{name}`" not in catalog]
    assert not missing, f"document these catalog fields under 'The catalog file': {missing}"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, str]]:
    """(`command path`, `--option`) for a command and all its nested subcommands."""
    found = [
        (path, option)
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]
    for name, sub in subcommands(parser).items():
        found += [(f"{path} {name}", option) for _, option in options(sub, f"{path} {name}")]
    return found


def sections_about(command: str) -> list[str]:
    """Every docs section (heading to the next heading) that names `toolmesh COMMAND`."""
    mention = re.compile(rf"toolmesh {re.escape(command)}(?![\w-])")
    found = []
    for text in all_docs().values():
        starts = [m.start() for m in HEADING.finditer(text)] + [len(text)]
        found += [text[a:b] for a, b in itertools.pairwise(starts) if mention.search(text[a:b])]
    return found


def test_every_subcommand_option_is_documented() -> None:
    """Each `toolmesh X` is named in some docs section, and every option of it and of its own
    subcommands (`toolmesh keys create --agent`) is written in a section that names it."""
    problems: list[str] = []
    commands = subcommands(_parser())
    assert "router" in commands and "up" in commands
    for name, parser in commands.items():
        body = "\n".join(sections_about(name))
        if not body:
            problems.append(f"no docs section names `toolmesh {name}`")
            continue
        for path, option in options(parser, f"toolmesh {name}"):
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", body):
                problems.append(f"`{path} {option}` is not in a docs section that names `toolmesh {name}`")
            if path != f"toolmesh {name}" and path not in body:
                problems.append(f"`{path}` is not in a docs section that names `toolmesh {name}`")
    assert not problems, "\n".join(problems)


def test_relative_links_in_the_docs_point_at_files_that_exist() -> None:
    broken: list[str] = []
    for path in [ROOT / "README.md", ROOT / "compose" / "README.md", *sorted(DOCS.glob("*.md"))]:
        if not path.exists():
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_the_sdk_example_in_the_client_guide_works(tmp_path: Path) -> None:
    example = re.findall(r"```python\n(.*?)```", (DOCS / "clients.md").read_text(), flags=re.DOTALL)[0]
    servers = {
        "units": {"command": sys.executable, "args": [str(ROOT / "examples" / "servers" / "units.py")]}
    }
    servers["sample"] = sample_server_stdio_entry("sample")
    with run_router(tmp_path, servers) as router:
        code = example.replace("http://127.0.0.1:8080", router.base_url)
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 0, result.stderr
    count_line, answer = result.stdout.splitlines()[:2]
    assert "units__convert_length" in count_line
    assert abs(float(answer) - 0.9144) < 1e-9, answer


def test_docs_say_where_consul_really_runs() -> None:
    text = (DOCS / "discovery.md").read_text()
    assert "double" in text and "compose/" in text
