"""The README is the reference of every setting: a setting it does not name cannot be found."""

from __future__ import annotations

from pathlib import Path

from wheel.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme():
    missing = [f"WHEEL_{name.upper()}" for name in Settings.model_fields if f"`WHEEL_{name.upper()}`" not in README]
    assert missing == [], f"add these settings to the README's settings table: {missing}"
