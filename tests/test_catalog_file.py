"""`${VAR}` and `${file:...}` in a catalog: what is replaced, and what an operator is told when it
cannot be (the server, the field and the fix, never the secret)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.catalog.config_file import parse_catalog
from router.errors import ConfigError


def catalog(servers: dict[str, object]) -> bytes:
    return json.dumps({"mcpServers": servers}).encode()


def test_references_are_replaced_in_url_headers_args_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("BACKEND", "http://127.0.0.1:9100")
    monkeypatch.setenv("REGION", "eu")
    parsed = parse_catalog(
        catalog(
            {
                "remote": {
                    "url": "${BACKEND}/mcp/${env:REGION}",
                    "headers": {"Authorization": "Bearer ${file:" + str(secret) + "}"},
                },
                "local": {"command": "srv", "args": ["--region", "${REGION}"], "env": {"R": "${REGION}"}},
            }
        )
    )
    [remote] = parsed.servers["remote"]
    assert remote.url == "http://127.0.0.1:9100/mcp/eu"
    assert dict(remote.headers) == {"Authorization": "Bearer s3cret"}
    [local] = parsed.servers["local"]
    assert local.args == ("--region", "eu") and dict(local.env) == {"R": "eu"}


def test_what_cannot_be_replaced_names_the_server_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISSING_TOKEN", raising=False)
    with pytest.raises(ConfigError) as unset:
        parse_catalog(catalog({"gh": {"url": "http://h/mcp", "headers": {"X-Key": "${MISSING_TOKEN}"}}}))
    assert "server 'gh', field 'headers'" in str(unset.value) and "export MISSING_TOKEN" in str(unset.value)

    monkeypatch.setenv("NOT_A_URL", "ftp://user:hunter2@host/mcp")
    with pytest.raises(ConfigError) as wrong:
        parse_catalog(catalog({"web": {"url": "${NOT_A_URL}"}}))
    message = str(wrong.value)
    assert "server 'web', field 'url'" in message and "http:// or https://" in message
    assert "hunter2" not in message  # the expanded value may hold a credential

    with pytest.raises(ConfigError) as literal:
        parse_catalog(catalog({"web": {"url": "ftp://host/mcp"}}))
    assert str(literal.value).startswith("catalog: server 'web', field 'url': must start with http://")


def test_a_rule_across_fields_is_reported_for_the_server_with_its_own_words() -> None:
    with pytest.raises(ConfigError) as both:
        parse_catalog(catalog({"fs": {"command": "srv", "url": "http://h/mcp"}}))
    assert str(both.value).startswith("catalog: server 'fs': give either `command`")
    assert "field 'entry'" not in str(both.value) and "Value error" not in str(both.value)
