"""Date values in definitions: relative (`-7d`, `24h`, `-1w`, `-1m`, `-1y`) or absolute.

Design §4.1: a relative date is `now` minus exactly N units (w = 7 d, m = 30 d, y = 365 d; the
sign is ignored), never rounded to a bucket or midnight. Absolute values are ISO dates or
datetimes (UTC when naive) or a written date such as "January 15, 2024".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dateutil import parser as dateutil_parser

from cohorts.timestamps import from_datetime
from cohorts.vocab import RELATIVE_DATE_SECONDS

__all__ = ["DateValueError", "is_relative", "relative_seconds", "resolve_date"]

_RELATIVE = re.compile(r"^-?(\d{1,4})([hdwmy])$")
_MAX_RELATIVE_AMOUNT = 9_999


class DateValueError(ValueError):
    """A date value that is neither a relative nor an absolute date."""


def relative_seconds(text: str) -> int | None:
    """Duration of a relative date in seconds, or None when `text` is not relative."""
    match = _RELATIVE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    amount = int(match.group(1))
    if amount > _MAX_RELATIVE_AMOUNT:
        return None
    return amount * RELATIVE_DATE_SECONDS[match.group(2)]


def is_relative(text: object) -> bool:
    return isinstance(text, str) and relative_seconds(text) is not None


def resolve_date(text: object, now_us: int) -> int:
    """Epoch µs of a date value at `now_us`; raises DateValueError when it is not a date."""
    if not isinstance(text, str) or not text.strip():
        raise DateValueError(f"not a date: {text!r}")
    seconds = relative_seconds(text)
    if seconds is not None:
        return now_us - seconds * 1_000_000
    return _absolute(text.strip())


def _absolute(text: str) -> int:
    if text.lstrip("-").isdigit():
        raise DateValueError(f"not a date: {text!r}")
    candidate = text[:-1] + "+00:00" if text.endswith("Z") else text
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        try:
            parsed = dateutil_parser.parse(text, default=datetime(2000, 1, 1))
        except (ValueError, OverflowError) as exc:
            raise DateValueError(f"not a date: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return from_datetime(parsed)
