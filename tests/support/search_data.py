"""Small tool sets and the frozen evaluation set (bench/toolsearch/) for the ranker's tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from router.catalog.search import SearchIndex, Weights

EVALSET = Path(__file__).resolve().parents[2] / "bench" / "toolsearch" / "evalset"

SMALL: dict[str, list[dict[str, Any]]] = {
    "github": [
        {
            "name": "create_issue",
            "description": "Create a new issue in a GitHub repository",
            "inputSchema": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
            },
        },
        {"name": "getPullRequestFiles", "description": "Files changed in a pull request"},
        {"name": "search_code", "description": "Search for code across GitHub repositories"},
    ],
    "filesystem": [
        {
            "name": "read_text_file",
            "description": "Read the complete contents of a file as text",
            "inputSchema": {
                "type": "object",
                "properties": {"path": {"type": "string", "description": "File path"}},
            },
        },
        {"name": "create_directory", "description": "Create a new directory"},
        {"name": "list_directory", "description": "List the files and directories in a path"},
    ],
    "web": [
        {"name": "fetch", "description": "Fetches a URL from the internet and extracts its contents"},
        {"name": "web_search", "description": "Search the web for any topic"},
    ],
}


def load_evalset() -> dict[str, dict[str, Any]]:
    if not EVALSET.is_dir():
        pytest.skip("evaluation set not present")
    return {p.stem: json.loads(p.read_text()) for p in sorted(EVALSET.glob("*.json"))}


def index_of(catalog: Mapping[str, Sequence[Mapping[str, Any]]], **weights: Any) -> SearchIndex:
    """An index of ``catalog`` (server -> tool definitions), with ``weights`` changed from the
    defaults (``typo=0.0``: the rule off)."""
    idx = SearchIndex(weights=Weights(**weights))
    for server, tools in catalog.items():
        idx.put_server(server, None, tools)
    return idx
