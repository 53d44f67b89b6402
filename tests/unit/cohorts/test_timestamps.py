"""`format_iso` renders exactly what strftime of the instant's datetime renders."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cohorts.timestamps import format_iso, parse_timestamp, to_datetime

#: Year 1 to year 9999, the range a datetime holds.
INSTANTS = st.integers(min_value=-62_135_596_800_000_000, max_value=253_402_300_799_999_999)


@given(INSTANTS)
def test_format_iso_is_strftime_of_the_instant(epoch_us: int) -> None:
    assert format_iso(epoch_us) == to_datetime(epoch_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: From year 1000: strftime does not pad earlier years to four digits, as before the cache.
FOUR_DIGIT_YEARS = st.integers(min_value=-30_610_224_000_000_000, max_value=253_402_300_799_999_999)


@given(FOUR_DIGIT_YEARS)
def test_format_iso_reads_back_as_the_same_instant(epoch_us: int) -> None:
    assert parse_timestamp(format_iso(epoch_us)) == epoch_us


def test_the_edges_of_a_second_and_of_the_epoch() -> None:
    assert format_iso(0) == "1970-01-01T00:00:00.000000Z"
    assert format_iso(-1) == "1969-12-31T23:59:59.999999Z"
    assert format_iso(1_735_689_599_999_999) == "2024-12-31T23:59:59.999999Z"
    assert format_iso(1_735_689_600_000_000) == "2025-01-01T00:00:00.000000Z"
