"""since/until bounds: unix seconds, dates (a date as upper bound ends that day), ISO times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ceruleum.gateway.usage_window import InvalidTimeError, parse_bound


def test_unix_seconds() -> None:
    assert parse_bound("1714521600") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_bound("1714521600.5") == datetime(2024, 5, 1, 0, 0, 0, 500000, tzinfo=UTC)


def test_a_date_starts_a_lower_bound_and_ends_an_upper_one() -> None:
    assert parse_bound("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_bound("2024-05-01", upper=True) == datetime(2024, 5, 2, tzinfo=UTC)
    assert parse_bound("2024-12-31", upper=True) == datetime(2025, 1, 1, tzinfo=UTC)


def test_iso_times_are_converted_to_utc() -> None:
    assert parse_bound("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_bound("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_bound("2024-05-01T12:00") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_bound("2024-05-01T12:00", upper=True) == datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2024-13-01", "-5", "1e400", "99999999999999999999", "2024-05-01T25"]
)
def test_invalid_times_are_refused(text: str) -> None:
    with pytest.raises(InvalidTimeError, match="is not a time"):
        parse_bound(text)
