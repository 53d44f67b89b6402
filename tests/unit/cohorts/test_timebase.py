"""Buckets from the Unix epoch and the windows built on them (design §4, §4.1)."""

from __future__ import annotations

import pytest

from cohorts.dates import DateValueError
from cohorts.model import BehavioralLeaf
from cohorts.timebase import (
    bucket_of,
    bucket_start_us,
    explicit_window,
    resolve_date_us,
    span_buckets,
    unit_us,
    window_buckets,
)
from cohorts.timestamps import parse_timestamp

MINUTE_US = 60_000_000
DAY_US = 86_400_000_000
NOW = parse_timestamp("2024-01-10T12:34:56.789012Z")


@pytest.mark.parametrize(
    ("ts_us", "granularity", "bucket"),
    [
        (0, "minute", 0),
        (MINUTE_US - 1, "minute", 0),
        (MINUTE_US, "minute", 1),
        (DAY_US - 1, "day", 0),
        (DAY_US, "day", 1),
        (-1, "minute", -1),
        (-1, "day", -1),
        (parse_timestamp("2024-01-10T00:00:00Z"), "day", 19_732),
    ],
)
def test_bucket_of_floors_from_the_unix_epoch(ts_us, granularity, bucket):
    assert bucket_of(ts_us, granularity) == bucket


@pytest.mark.parametrize("granularity", ["minute", "day"])
@pytest.mark.parametrize("bucket", [-3, 0, 1, 28_401_234])
def test_bucket_start_is_the_first_microsecond_of_the_bucket(granularity, bucket):
    start = bucket_start_us(bucket, granularity)
    assert bucket_of(start, granularity) == bucket
    assert bucket_of(start - 1, granularity) == bucket - 1


@pytest.mark.parametrize(
    ("time_value", "time_interval", "granularity", "span"),
    [
        (5, "minute", "minute", 5),
        (1, "hour", "minute", 60),
        (24, "hour", "minute", 1_440),
        (1, "day", "day", 1),
        (2, "week", "day", 14),
        (1, "month", "day", 30),
        (1, "year", "day", 365),
        (0, "day", "day", 0),
    ],
)
def test_window_is_bucket_of_now_minus_n_units_through_bucket_of_now(time_value, time_interval, granularity, span):
    last = bucket_of(NOW, granularity)
    assert window_buckets(NOW, time_value, time_interval) == (granularity, last - span, last)
    assert span_buckets(time_value, time_interval) == (granularity, span)


def test_unit_lengths_are_exact_durations():
    assert unit_us(1, "week") == 7 * DAY_US
    assert unit_us(1, "month") == 30 * DAY_US
    assert unit_us(1, "year") == 365 * DAY_US
    assert unit_us(3, "hour") == 180 * MINUTE_US


def test_explicit_relative_start_is_now_minus_exactly_n_units_and_end_defaults_to_now():
    leaf = BehavioralLeaf(kind="performed_event", event="e", explicit_datetime="-7d")
    assert explicit_window(leaf, NOW) == (NOW - 7 * DAY_US, NOW)


def test_explicit_relative_dates_ignore_the_sign():
    leaf = BehavioralLeaf(kind="performed_event", event="e", explicit_datetime="24h", explicit_datetime_to="-1h")
    assert explicit_window(leaf, NOW) == (NOW - DAY_US, NOW - 60 * MINUTE_US)


def test_explicit_absolute_window_is_independent_of_now():
    leaf = BehavioralLeaf(
        kind="performed_event",
        event="e",
        explicit_datetime="2024-01-01",
        explicit_datetime_to="2024-01-05T10:00:00Z",
    )
    expected = (parse_timestamp("2024-01-01T00:00:00Z"), parse_timestamp("2024-01-05T10:00:00Z"))
    assert explicit_window(leaf, NOW) == expected
    assert explicit_window(leaf, NOW + 99 * DAY_US) == expected


def test_explicit_window_needs_an_explicit_start():
    with pytest.raises(ValueError):
        explicit_window(BehavioralLeaf(kind="performed_event", event="e", time_value=1, time_interval="day"), NOW)


def test_unparseable_explicit_date_raises_date_value_error():
    leaf = BehavioralLeaf(kind="performed_event", event="e", explicit_datetime="garbage")
    with pytest.raises(DateValueError):
        explicit_window(leaf, NOW)


def test_resolve_date_us_resolves_relative_against_now_and_absolute_once():
    assert resolve_date_us("-1w", NOW) == NOW - 7 * DAY_US
    assert resolve_date_us("January 15, 2024", NOW) == parse_timestamp("2024-01-15T00:00:00Z")
