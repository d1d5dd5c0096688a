"""Times shown to people: in the display zone, the zone named."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from wheel.settings import Settings
from wheel.timefmt import age, local

AT = datetime(2026, 12, 1, 14, 0, 5, tzinfo=timezone.utc)


def test_local_converts_to_the_zone_and_names_it():
    assert local(AT, "Asia/Kolkata") == "2026-12-01 19:30:05 IST"
    assert local(AT, "UTC") == "2026-12-01 14:00:05 UTC"
    assert local(AT.replace(tzinfo=None), "Asia/Kolkata") == "2026-12-01 19:30:05 IST"  # naive means UTC
    assert local(None, "Asia/Kolkata") == "-"


def test_a_zone_without_an_abbreviation_shows_its_offset():
    assert local(AT, "Asia/Dubai") == "2026-12-01 18:00:05 UTC+0400"  # tzdata calls it "+04"


@pytest.mark.parametrize("seconds, shown", [(0, "0s"), (59.9, "59s"), (200, "3m 20s"), (7500, "2h 5m"),
                                            (273600, "3d 4h"), (None, "-"), (-3, "0s")])
def test_age_in_its_two_largest_units(seconds, shown):
    assert age(seconds) == shown


def test_the_display_zone_setting_must_be_a_zone():
    assert Settings().display_tz == "Asia/Kolkata"
    with pytest.raises(ValidationError, match="not a time zone name"):
        Settings(display_tz="India/Mumbai")
