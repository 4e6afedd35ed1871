"""The docs stay true: every setting is documented with its variable."""

from __future__ import annotations

from pathlib import Path

from router.settings import RouterSettings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_router_setting_is_in_the_configuration_reference() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [
        name
        for name in RouterSettings.model_fields
        if f"`{name}`" not in text or f"`TOOLMESH_{name.upper()}`" not in text
    ]
    assert not missing, f"document these settings in docs/configuration.md: {missing}"
