"""docs/configuration.md lists every setting."""

from __future__ import annotations

from pathlib import Path

from relaybus.settings import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_listed_in_the_configuration_page() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [
        f"RELAYBUS_{name.upper()}"
        for name in Settings.model_fields
        if f"`RELAYBUS_{name.upper()}`" not in text
    ]
    assert missing == []
