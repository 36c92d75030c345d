"""The since/until bounds of a usage query, as the admin API and the CLI both accept them."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidTimeError(ValueError):
    pass


def parse_bound(text: str, *, upper: bool = False) -> datetime:
    """Unix seconds, an ISO date, or an ISO date and time (UTC unless it names a zone).

    A bare date as an upper bound means the end of that day, so ``--since D --until D`` is day D.
    """
    value = text.strip()
    try:
        if _NUMBER.match(value):
            seconds = float(value)
            if not math.isfinite(seconds):
                raise ValueError
            return datetime.fromtimestamp(seconds, UTC)
        if _DATE.match(value):
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if upper else start
        moment = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        raise InvalidTimeError(_message(text)) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _message(text: str) -> str:
    shown = text if len(text) <= 40 else text[:40] + "..."
    return (
        f"'{shown}' is not a time: give unix seconds, a date (2024-05-01) or an ISO date and "
        "time (2024-05-01T12:00:00Z)."
    )
