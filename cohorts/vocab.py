"""The vocabularies of the cohort grammar, each in one table.

Validation (`cohorts.validate`) and evaluation (`cohorts.evaluate`) both read these tables, so
what is accepted at save and what the engine can compute cannot drift apart (design §4).
"""

from __future__ import annotations

from typing import Final

#: Units of a time window, in seconds. month = 30 days and year = 365 days (design §4).
UNIT_SECONDS: Final[dict[str, int]] = {
    "minute": 60,
    "hour": 3_600,
    "day": 86_400,
    "week": 7 * 86_400,
    "month": 30 * 86_400,
    "year": 365 * 86_400,
}

#: Bucket granularity of each unit: minute buckets for minute/hour windows, day buckets otherwise.
UNIT_BUCKET: Final[dict[str, str]] = {
    "minute": "minute",
    "hour": "minute",
    "day": "day",
    "week": "day",
    "month": "day",
    "year": "day",
}

#: Seconds per bucket granularity, counted from the Unix epoch (design §4.1).
BUCKET_SECONDS: Final[dict[str, int]] = {"minute": 60, "day": 86_400}

#: Relative-date suffixes (`-7d`, `-24h`, `-1w`, `-1m`, `-1y`), in seconds; the sign is ignored.
RELATIVE_DATE_SECONDS: Final[dict[str, int]] = {
    "h": 3_600,
    "d": 86_400,
    "w": 7 * 86_400,
    "m": 30 * 86_400,
    "y": 365 * 86_400,
}

#: Person-property operators the engine computes, by family.
STRING_OPERATORS: Final[frozenset[str]] = frozenset(
    {
        "exact",
        "is_not",
        "icontains",
        "not_icontains",
        "regex",
        "not_regex",
        "starts_with",
        "not_starts_with",
        "ends_with",
        "not_ends_with",
    }
)
NUMERIC_OPERATORS: Final[frozenset[str]] = frozenset({"gt", "gte", "lt", "lte", "min", "max"})
RANGE_OPERATORS: Final[frozenset[str]] = frozenset({"between", "not_between"})
PRESENCE_OPERATORS: Final[frozenset[str]] = frozenset({"is_set", "is_not_set"})
DATE_OPERATORS: Final[frozenset[str]] = frozenset({"is_date_before", "is_date_after", "is_date_exact"})

PERSON_OPERATORS: Final[frozenset[str]] = (
    STRING_OPERATORS | NUMERIC_OPERATORS | RANGE_OPERATORS | PRESENCE_OPERATORS | DATE_OPERATORS
)

#: Operators that are exact complements of a positive one: a missing property matches them (design §4.1).
NEGATIVE_OPERATORS: Final[frozenset[str]] = frozenset(
    {"is_not", "not_icontains", "not_regex", "not_starts_with", "not_ends_with"}
)

#: Operators whose single-element list value is stored unwrapped (reference §2.3).
UNWRAPPED_OPERATORS: Final[frozenset[str]] = frozenset(
    {
        "icontains",
        "not_icontains",
        "starts_with",
        "not_starts_with",
        "ends_with",
        "not_ends_with",
        "is_date_after",
        "is_date_before",
    }
)

#: In PostHog's enum but meaningless for cohorts: refused at save with a 400 naming them.
UNSUPPORTED_PERSON_OPERATORS: Final[frozenset[str]] = frozenset(
    {"in", "not_in", "is_cleaned_path_exact", "flag_evaluates_to"}
)

#: Count comparisons of `performed_event_multiple` / `performed_event_regularly`; absent = eq.
COUNT_OPERATORS: Final[frozenset[str]] = frozenset({"gte", "lte", "gt", "lt", "eq", "exact"})

#: Behavioural kinds and the optional attributes each one needs (reference §2.7 table).
BEHAVIORAL_KINDS: Final[dict[str, tuple[str, ...]]] = {
    "performed_event": ("window",),
    "performed_event_multiple": ("window", "operator_value"),
    "performed_event_first_time": ("time_value", "time_interval"),
    "performed_event_sequence": (
        "time_value",
        "time_interval",
        "seq_event",
        "seq_time_value",
        "seq_time_interval",
    ),
    "performed_event_regularly": (
        "time_value",
        "time_interval",
        "min_periods",
        "total_periods",
    ),
    "stopped_performing_event": ("time_value", "time_interval", "seq_time_value", "seq_time_interval"),
    "restarted_performing_event": ("time_value", "time_interval", "seq_time_value", "seq_time_interval"),
}

#: Kinds that make a cohort "analytical" in PostHog's cohort_type derivation (reference §2.9).
ANALYTICAL_KINDS: Final[frozenset[str]] = frozenset(
    {
        "performed_event_first_time",
        "performed_event_regularly",
        "performed_event_sequence",
        "stopped_performing_event",
        "restarted_performing_event",
    }
)

#: Limits that keep a definition from becoming a denial of service (refused at save).
MAX_DEPTH: Final[int] = 10
MAX_LEAVES: Final[int] = 200
MAX_TOTAL_PERIODS: Final[int] = 366
