"""Durations and times as users type them."""

from datetime import datetime, timedelta, timezone

import pytest

from aiaudit.pipeline.timespec import parse_duration, parse_time

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800),
                                                ("2w", 1209600), (" 3h ", 10800)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "0s", "-5m", "1.5h", "7 days", "15min", "9999999999d", "7D"])
def test_bad_durations_say_the_form(text):
    with pytest.raises(ValueError, match="like 90s, 15m, 2h, 7d or 2w"):
        parse_duration(text)


def test_times_are_rfc3339_or_a_duration_ago():
    assert parse_time("7d", NOW) == NOW - timedelta(days=7)
    assert parse_time("2026-11-01T00:00:00Z", NOW) == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_time("2026-11-01T01:00:00+01:00", NOW) == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_time("2026-11-01T00:00:00", NOW) == datetime(2026, 11, 1, tzinfo=timezone.utc)  # no offset: UTC
    with pytest.raises(ValueError, match="neither an RFC 3339 time .* nor a duration ago"):
        parse_time("last tuesday", NOW)
