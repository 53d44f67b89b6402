"""The time base of behavioural windows: buckets from the Unix epoch and the windows built from them.

Design §4.1: a minute bucket is floor(t / 60 s) and a day bucket floor(t / 86,400 s), both counted
from the Unix epoch (UTC). Minute and hour windows use minute buckets, day/week/month/year windows
use day buckets (`cohorts.vocab.UNIT_BUCKET`). "Last N units" is the inclusive bucket range
`[bucket(now) - N units, bucket(now)]`, so an event later than now but inside now's bucket counts.
Explicit windows (`explicit_datetime`, optional `explicit_datetime_to`) are not bucketed: they are
`[start, end or now]`, inclusive to the microsecond.

Everything here is integer arithmetic on epoch microseconds: no datetime objects, no clock.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from cohorts.dates import relative_seconds, resolve_date
from cohorts.model import BehavioralLeaf
from cohorts.vocab import BUCKET_SECONDS, UNIT_BUCKET, UNIT_SECONDS

__all__ = [
    "BUCKET_US",
    "DAY_US",
    "bucket_of",
    "bucket_start_us",
    "explicit_window",
    "resolve_date_us",
    "span_buckets",
    "unit_us",
    "window_buckets",
]

#: Microseconds per bucket, by granularity.
BUCKET_US: Final[dict[str, int]] = {name: seconds * 1_000_000 for name, seconds in BUCKET_SECONDS.items()}
DAY_US: Final[int] = 86_400 * 1_000_000


def bucket_of(ts_us: int, granularity: str) -> int:
    """Bucket index of an instant; floor division, so instants before 1970 land in negative buckets."""
    return ts_us // BUCKET_US[granularity]


def bucket_start_us(bucket: int, granularity: str) -> int:
    """First microsecond of a bucket."""
    return bucket * BUCKET_US[granularity]


def unit_us(time_value: int, time_interval: str) -> int:
    """Exact duration of `time_value time_interval` (week = 7 d, month = 30 d, year = 365 d)."""
    return time_value * UNIT_SECONDS[time_interval] * 1_000_000


def span_buckets(time_value: int, time_interval: str) -> tuple[str, int]:
    """(granularity, N units expressed in buckets of that granularity)."""
    granularity = UNIT_BUCKET[time_interval]
    return granularity, time_value * UNIT_SECONDS[time_interval] // BUCKET_SECONDS[granularity]


def window_buckets(now_us: int, time_value: int, time_interval: str) -> tuple[str, int, int]:
    """(granularity, first, last) of "the last N units", both bucket indexes inclusive (design §4)."""
    granularity, span = span_buckets(time_value, time_interval)
    last = now_us // BUCKET_US[granularity]
    return granularity, last - span, last


def resolve_date_us(text: str, now_us: int) -> int:
    """`cohorts.dates.resolve_date`, with absolute values parsed once (they do not depend on now)."""
    if relative_seconds(text) is not None:
        return resolve_date(text, now_us)
    return _absolute_date_us(text)


def explicit_window(leaf: BehavioralLeaf, now_us: int) -> tuple[int, int]:
    """(start_us, end_us) of an explicit window, both inclusive; the end is now when no `_to` is given.

    Raises `cohorts.dates.DateValueError` when a date does not parse (validation refuses those).
    """
    if leaf.explicit_datetime is None:
        raise ValueError("leaf has no explicit window")
    start = resolve_date_us(leaf.explicit_datetime, now_us)
    end = now_us if leaf.explicit_datetime_to is None else resolve_date_us(leaf.explicit_datetime_to, now_us)
    return start, end


@lru_cache(maxsize=4_096)
def _absolute_date_us(text: str) -> int:
    """Absolute dates are a pure function of their text, so parsing is memoised (dateutil is slow)."""
    return resolve_date(text, 0)
