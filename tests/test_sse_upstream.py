"""The 2024-11-05 HTTP+SSE transport toward a backend (`"type": "sse"`): what the catalog
accepts, where the channel may POST, and a backend whose stream goes away and comes back.
(The tools/resources/prompts tests of `test_router_core.py` and the relay tests of
`test_relay.py` run over this transport too.)"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from router.catalog.config_file import parse_catalog
from router.catalog.record import from_consul, to_consul_meta
from router.errors import BackendUnavailable, ConfigError
from router.up.processes import free_port
from router.upstream.sse_channel import endpoint_of
from tests.conftest import run_router
from tests.support.procs import sample_server_sse
from tests.support.waits import wait_until


def test_a_catalog_entry_of_type_sse_is_an_sse_record_and_survives_the_registry() -> None:
    catalog = parse_catalog(
        json.dumps({"mcpServers": {"old": {"type": "sse", "url": "http://h:1/sse"}}}).encode()
    )
    (record,) = catalog.servers["old"]
    assert record.transport == "sse" and record.url == "http://h:1/sse"
    plain = parse_catalog(
        json.dumps({"mcpServers": {"new": {"type": "http", "url": "http://h:1/mcp"}}}).encode()
    )
    assert plain.servers["new"][0].transport == "http"
    meta = to_consul_meta(record)
    assert meta["transport"] == "sse"
    service = {"ID": "x", "Address": "h", "Port": 1, "Meta": meta}
    assert from_consul(service, "h").transport == "sse"
    with pytest.raises(ConfigError) as refused:
        parse_catalog(json.dumps({"mcpServers": {"old": {"type": "sse", "command": "x"}}}).encode())
    assert "needs the `url`" in str(refused.value)


def test_the_endpoint_must_be_on_the_streams_own_origin() -> None:
    stream = "http://127.0.0.1:9000/sse"
    assert (
        endpoint_of("old", stream, "/messages/?session_id=1")
        == "http://127.0.0.1:9000/messages/?session_id=1"
    )
    assert endpoint_of("old", stream, "messages?x=1") == "http://127.0.0.1:9000/messages?x=1"
    with pytest.raises(BackendUnavailable) as caught:
        endpoint_of("old", stream, "http://elsewhere.example/steal")
    assert "another origin" in str(caught.value)


def call(base: str, tool: str, arguments: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{base}/v1/tools/{tool}/call",
        data=json.dumps(arguments).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_backend_whose_stream_ends_is_reconnected_when_it_comes_back(tmp_path: Path) -> None:
    port = free_port()
    with (
        sample_server_sse("old", port=port, log_dir=tmp_path) as (url, first),
        run_router(tmp_path, {"old": {"url": url, "type": "sse"}}) as router,
    ):
        assert call(router.base_url, "old__echo", {"text": "a"}) == (
            200,
            {"content": [{"type": "text", "text": "old:a"}], "isError": False},
        )
        first.stop()  # the stream ends: the backend is down, calls fail at once
        status, body = wait_until(
            lambda: (answer := call(router.base_url, "old__echo", {"text": "b"}))[0] != 200 and answer,
            10,
            "the router noticing the stream ended",
        )
        assert status == 503 and body["error"]["code"] == -32001, body
        with sample_server_sse("old", port=port, log_dir=tmp_path):
            status, body = wait_until(
                lambda: (answer := call(router.base_url, "old__echo", {"text": "c"}))[0] == 200 and answer,
                15,
                "the router reconnecting to the new stream",
            )
            assert body["content"][0]["text"] == "old:c"
