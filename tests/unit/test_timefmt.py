"""Times shown to a person: in the display zone, with the zone named; and log lines' formats."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest

from wheel.logs import ContextFilter, JsonFormatter, TextFormatter, log_context
from wheel.settings import Settings
from wheel.timefmt import age, local, show

T = datetime(2026, 12, 1, 8, 35, 3, 123456, tzinfo=timezone.utc)


def test_times_are_shown_in_the_zone_asked_for_with_its_name():
    assert local(T, "Asia/Kolkata").isoformat() == "2026-12-01T14:05:03.123456+05:30"
    assert show(T, "Asia/Kolkata") == "2026-12-01 14:05:03 IST"
    assert show(T, "Asia/Kolkata", "%H:%M:%S %Z") == "14:05:03 IST"
    assert show(T, "UTC") == "2026-12-01 08:35:03 UTC"
    assert show(T.replace(month=7), "America/New_York") == "2026-07-01 04:35:03 EDT"
    assert show(None, "Asia/Kolkata") == "-"


def test_a_naive_time_is_taken_as_utc_and_an_unknown_zone_is_refused():
    assert show(T.replace(tzinfo=None), "Asia/Kolkata") == "2026-12-01 14:05:03 IST"
    with pytest.raises(ValueError, match="unknown time zone 'Asia/Bombay2'"):
        show(T, "Asia/Bombay2")


def test_the_display_zone_is_a_setting_india_by_default(monkeypatch):
    assert Settings().display_tz == "Asia/Kolkata"
    monkeypatch.setenv("WHEEL_DISPLAY_TZ", "Europe/London")
    assert Settings().display_tz == "Europe/London"
    monkeypatch.setenv("WHEEL_DISPLAY_TZ", "Nowhere/Else")
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings()


def record(message: str, *args) -> logging.LogRecord:
    entry = logging.LogRecord("wheel.test", logging.WARNING, __file__, 1, message, args, None)
    ContextFilter("wheel-worker", providers=[lambda: {"task_name": "from-provider"}]).filter(entry)
    return entry


def test_a_json_line_has_the_fields_and_the_work_in_hand():
    with log_context(task_id="t-1", inbox_id=7, channel_id=None):
        with log_context(event_id=9):
            line = JsonFormatter().format(record("stored %d\nmessages", 3))
        after = JsonFormatter().format(record("later"))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "WARNING" and entry["process"] == "wheel-worker" and entry["logger"] == "wheel.test"
    assert entry["message"] == "stored 3\nmessages" and entry["time"].endswith("+00:00")
    assert (entry["task_id"], entry["inbox_id"], entry["event_id"], entry["task_name"]) == ("t-1", 7, 9, "from-provider")
    assert "channel_id" not in entry and "event_id" not in json.loads(after)


def test_a_text_line_is_readable_with_its_context_on_the_first_line():
    with log_context(inbox_id=7):
        text = TextFormatter().format(record("stored"))
    assert text.endswith(" WARNING wheel.test: stored [task_name=from-provider inbox_id=7]")


@pytest.mark.parametrize("seconds, shown", [(0, "0s"), (59.9, "59s"), (200, "3m 20s"), (7500, "2h 5m"),
                                            (273600, "3d 4h"), (None, "-"), (-3, "0s")])
def test_age_in_its_two_largest_units(seconds, shown):
    assert age(seconds) == shown
