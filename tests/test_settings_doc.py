"""Every setting is documented in the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leaderboard_api.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    text = README.read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))
    missing = set(Settings.model_fields) - documented
    assert not missing, f"settings missing from README.md: {sorted(missing)}"
    stale = {d for d in documented if d not in Settings.model_fields and "/" not in d}
    assert not stale, f"README documents settings that do not exist: {sorted(stale)}"


def test_comma_separated_env_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADERBOARD_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]
