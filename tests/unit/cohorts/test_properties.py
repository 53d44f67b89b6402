"""Property operators, canonical values and relative-date flips (design §4.1, reference §2.6)."""

from __future__ import annotations

import pytest

from cohorts.model import EventFilter, PersonLeaf
from cohorts.properties import canonical, match_event, match_property, property_deadline_us, to_number
from cohorts.timestamps import parse_timestamp

NOW = parse_timestamp("2024-01-10T12:00:00Z")
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000

NEGATIVE_PAIRS = [
    ("exact", "is_not"),
    ("icontains", "not_icontains"),
    ("regex", "not_regex"),
    ("starts_with", "not_starts_with"),
    ("ends_with", "not_ends_with"),
]


def matches(operator, expected, actual, now_us=NOW):
    """Does a person whose `p` is `actual` (the string "<missing>" = no key) match?"""
    properties = {} if actual == "<missing>" else {"p": actual}
    return match_property(operator, expected, properties, "p", now_us)


# --- canonical values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("abc", "abc"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (30, "30"),
        (30.0, "30"),
        (-0.0, "0"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (1e20, "100000000000000000000"),
        (None, None),
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
        ([1, "x"], '[1,"x"]'),
    ],
)
def test_canonical_strings(value, text):
    assert canonical(value) == text


@pytest.mark.parametrize(
    ("expected", "actual"),
    [("30", 30.0), (30, "30"), ("true", True), (True, "true"), (1.5, "1.5"), ("false", False)],
)
def test_exact_compares_canonical_strings(expected, actual):
    assert matches("exact", expected, actual)


@pytest.mark.parametrize(("expected", "actual"), [("30.0", 30), ("1", True), ("True", True), ("0", False)])
def test_exact_does_not_coerce_beyond_canonical_strings(expected, actual):
    assert not matches("exact", expected, actual)


# --- missing and null; positive operators and their complements ---------------------------------


@pytest.mark.parametrize(("positive", "negative"), NEGATIVE_PAIRS)
@pytest.mark.parametrize("actual", ["<missing>", None])
def test_missing_or_null_never_matches_a_positive_operator_and_always_its_complement(positive, negative, actual):
    assert not matches(positive, "x", actual)
    assert matches(negative, "x", actual)


@pytest.mark.parametrize(("positive", "negative"), NEGATIVE_PAIRS)
@pytest.mark.parametrize("actual", ["x", "X", "abc", "xyz", "axb", 5, True])
def test_negative_operators_are_exact_complements(positive, negative, actual):
    assert matches(positive, "x", actual) != matches(negative, "x", actual)


@pytest.mark.parametrize(
    "operator", ["gt", "gte", "lt", "lte", "min", "max", "is_date_before", "is_date_after", "is_date_exact"]
)
def test_missing_property_never_matches_numeric_or_date_operators(operator):
    expected = "-1d" if operator.startswith("is_date") else 5
    assert not matches(operator, expected, "<missing>")
    assert not matches(operator, expected, None)


def test_is_set_and_is_not_set_treat_null_as_not_set():
    assert matches("is_set", None, "")
    assert matches("is_set", None, 0)
    assert matches("is_set", None, False)
    assert not matches("is_set", None, None)
    assert not matches("is_set", None, "<missing>")
    assert matches("is_not_set", None, None)
    assert matches("is_not_set", None, "<missing>")
    assert not matches("is_not_set", None, "")


# --- string operators ------------------------------------------------------------------------


def test_exact_with_a_list_is_any_of_and_is_not_with_a_list_is_none_of():
    assert matches("exact", ("pro", "team"), "team")
    assert not matches("exact", ("pro", "team"), "free")
    assert not matches("is_not", ("pro", "team"), "team")
    assert matches("is_not", ("pro", "team"), "free")
    assert matches("exact", ["pro", "team"], "pro")  # raw JSON lists work too


def test_exact_is_case_sensitive():
    assert not matches("exact", "Pro", "pro")


def test_icontains_is_case_insensitive_and_any_of_for_lists():
    assert matches("icontains", "ROM", "Chrome")
    assert matches("icontains", ("zzz", "saf"), "Safari")
    assert not matches("icontains", ("zzz", "yyy"), "Safari")
    assert matches("icontains", "3", 1234)


def test_starts_with_and_ends_with_are_case_insensitive():
    assert matches("starts_with", "CH", "chrome")
    assert not matches("starts_with", "rome", "chrome")
    assert matches("ends_with", "ROME", "Chrome")
    assert not matches("ends_with", "chr", "Chrome")
    assert matches("starts_with", ("x", "c"), "chrome")


def test_regex_is_case_sensitive_search():
    assert matches("regex", "hro", "Chrome")
    assert matches("regex", "^C.*e$", "Chrome")
    assert not matches("regex", "^c", "Chrome")
    assert matches("regex", "(?i)^c", "Chrome")
    assert matches("regex", r"^\d+$", 42)


def test_invalid_regex_matches_nothing_either_way():
    assert not matches("regex", "(unclosed", "(unclosed")
    assert not matches("not_regex", "(unclosed", "anything")
    assert not matches("regex", r"(a)\1", "aa")  # RE2 has no back-references


# --- numeric operators -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "expected", "actual", "result"),
    [
        ("gt", 30, 31, True),
        ("gt", 30, 30, False),
        ("gt", "30", "30.5", True),
        ("gte", 30, 30.0, True),
        ("gte", 30, 29.999, False),
        ("lt", 30, 29, True),
        ("lt", 30, 30, False),
        ("lte", "30", "30", True),
        ("lte", 30, 30.001, False),
        ("min", 30, 30, True),
        ("max", 30, 31, False),
        ("gt", 30, "abc", False),
        ("gt", "abc", 31, False),
        ("gt", 30, True, False),
        ("gt", 30, "", False),
        ("lt", 30, "nan", False),
        ("gt", 30, " 31 ", True),
    ],
)
def test_numeric_operators_need_numbers_on_both_sides(operator, expected, actual, result):
    assert matches(operator, expected, actual) is result


@pytest.mark.parametrize(
    ("actual", "between", "not_between"),
    [
        (18, True, False),
        (40, True, False),
        ("25", True, False),
        (17.999, False, True),
        (40.5, False, True),
        ("abc", False, False),
        ("<missing>", False, False),
        (None, False, False),
        (True, False, False),
    ],
)
def test_between_is_inclusive_and_non_numbers_match_neither(actual, between, not_between):
    assert matches("between", (18, 40), actual) is between
    assert matches("not_between", (18, 40), actual) is not_between


def test_between_with_a_malformed_range_matches_nothing():
    assert not matches("between", (18,), 20)
    assert not matches("not_between", ("a", 40), 50)


def test_to_number():
    assert to_number("12") == 12
    assert to_number("1.5") == 1.5
    assert to_number(True) is None
    assert to_number("inf") is None
    assert to_number("1_000") is None
    assert to_number(None) is None


# --- date operators --------------------------------------------------------------------------


def test_date_before_and_after_are_strict_against_absolute_dates():
    assert matches("is_date_before", "2024-01-09", "2024-01-08T23:59:59.999999Z")
    assert not matches("is_date_before", "2024-01-09", "2024-01-09T00:00:00Z")
    assert matches("is_date_after", "2024-01-09", "2024-01-09T00:00:00.000001Z")
    assert not matches("is_date_after", "2024-01-09", "2024-01-09T00:00:00Z")


def test_relative_date_is_now_minus_exactly_n_units_not_rounded():
    """Scenario: now 2024-01-10T12:00Z, `-1d` means 2024-01-09T12:00:00.000000Z to the µs."""
    cutoff = "2024-01-09T12:00:00Z"
    assert not matches("is_date_before", "-1d", cutoff)
    assert not matches("is_date_after", "-1d", cutoff)
    assert matches("is_date_before", "-1d", "2024-01-09T11:59:59.999999Z")
    assert matches("is_date_after", "-1d", "2024-01-09 12:00:00.000001")
    assert matches("is_date_after", "24h", "2024-01-09T12:00:01Z")  # sign is ignored


def test_date_exact_means_the_same_utc_day():
    assert matches("is_date_exact", "2024-01-09", "2024-01-09T23:59:59.999999Z")
    assert matches("is_date_exact", "2024-01-09T18:00:00Z", "2024-01-09T00:00:00Z")
    assert not matches("is_date_exact", "2024-01-09", "2024-01-10T00:00:00Z")
    assert not matches("is_date_exact", "2024-01-09", "2024-01-09T23:30:00-01:00")  # 2024-01-10 00:30Z
    assert matches("is_date_exact", "-1d", "2024-01-09T00:00:00Z")


def test_unparseable_property_dates_match_no_date_operator():
    for operator in ("is_date_before", "is_date_after", "is_date_exact"):
        assert not matches(operator, "2024-01-09", "soon")
        assert not matches(operator, "2024-01-09", 1_704_844_800)


def test_written_dates_parse_on_both_sides():
    assert matches("is_date_exact", "January 9, 2024", "2024-01-09T10:00:00Z")
    assert matches("is_date_before", "2024-01-10", "January 9, 2024")


# --- relative-date deadlines -----------------------------------------------------------------


def _deadline(operator, value, actual, now_us=NOW):
    return property_deadline_us(PersonLeaf("p", operator, value), {"p": actual}, now_us)


def test_date_before_relative_becomes_true_one_microsecond_after_value_plus_offset():
    actual = parse_timestamp("2024-01-09T15:00:00Z")
    deadline = _deadline("is_date_before", "-1d", "2024-01-09T15:00:00Z")
    assert deadline == actual + DAY_US + 1
    assert not matches("is_date_before", "-1d", "2024-01-09T15:00:00Z", deadline - 1)
    assert matches("is_date_before", "-1d", "2024-01-09T15:00:00Z", deadline)


def test_date_after_relative_becomes_false_at_value_plus_offset():
    actual = parse_timestamp("2024-01-09T15:00:00Z")
    deadline = _deadline("is_date_after", "-1d", "2024-01-09T15:00:00Z")
    assert deadline == actual + DAY_US
    assert matches("is_date_after", "-1d", "2024-01-09T15:00:00Z", deadline - 1)
    assert not matches("is_date_after", "-1d", "2024-01-09T15:00:00Z", deadline)


def test_settled_relative_dates_have_no_deadline():
    assert _deadline("is_date_before", "-1d", "2024-01-01T00:00:00Z") is None  # true for good
    assert _deadline("is_date_after", "-1d", "2024-01-01T00:00:00Z") is None  # false for good
    assert _deadline("is_date_exact", "-1d", "2024-01-01T00:00:00Z") is None


def test_date_exact_relative_enters_and_leaves_with_the_utc_day():
    day = parse_timestamp("2024-01-10T00:00:00Z")
    assert _deadline("is_date_exact", "-1d", "2024-01-10T08:00:00Z") == day + DAY_US  # enters tomorrow 00:00
    assert _deadline("is_date_exact", "-1d", "2024-01-09T08:00:00Z") == day + DAY_US  # leaves then too
    assert matches("is_date_exact", "-1d", "2024-01-10T08:00:00Z", day + DAY_US)
    assert not matches("is_date_exact", "-1d", "2024-01-10T08:00:00Z", day + DAY_US - 1)


def test_absolute_dates_and_other_operators_have_no_deadline():
    assert _deadline("is_date_before", "2024-01-11", "2024-01-10T00:00:00Z") is None
    assert _deadline("exact", "x", "x") is None
    assert property_deadline_us(PersonLeaf("p", "is_date_before", "-1d"), {}, NOW) is None


def test_list_of_relative_dates_takes_the_earliest_flip():
    actual = parse_timestamp("2024-01-10T06:00:00Z")
    assert _deadline("is_date_before", ("-12h", "-1d"), "2024-01-10T06:00:00Z") == actual + 12 * HOUR_US + 1


# --- event filters ---------------------------------------------------------------------------


def test_event_filters_must_all_match():
    filters = (EventFilter("browser", "exact", "Chrome"), EventFilter("n", "gt", 2))
    assert match_event(filters, {"browser": "Chrome", "n": 3})
    assert not match_event(filters, {"browser": "Chrome", "n": 2})
    assert not match_event(filters, {"n": 3})
    assert match_event((), {})


def test_event_filter_negative_operator_matches_a_missing_property():
    assert match_event((EventFilter("browser", "is_not", "Chrome"),), {})


def test_event_filter_relative_dates_resolve_against_the_given_instant():
    filters = (EventFilter("sent_at", "is_date_after", "-1h"),)
    properties = {"sent_at": "2024-01-10T11:30:00Z"}
    assert match_event(filters, properties, NOW)
    assert not match_event(filters, properties, NOW + HOUR_US)
    assert not match_event(filters, properties)  # no instant: a relative date cannot hold


def test_unknown_operators_match_nothing():
    assert not matches("flag_evaluates_to", "x", "x")
    assert not matches("in", "x", "x")
