"""Property matching: one operator against one person or event property (design §4.1, reference §2.6).

Rules this module owns:
- Values compare as canonical strings: strings as they are, booleans `true`/`false`, integral numbers
  as integers (`30.0` equals `"30"`), other floats by `repr`; a missing key and JSON null are "not set".
- Positive operators never match a missing property. `is_not`, `not_icontains`, `not_regex`,
  `not_starts_with` and `not_ends_with` are exact complements of their positive forms.
- A list value means any-of for the positive operators (so none-of for the complements).
- Numeric operators need a number or numeric string on both sides; a missing or non-numeric
  property matches neither `between` nor `not_between`.
- Date operators are strict (`<`, `>`); `is_date_exact` means the same UTC day. A relative date is
  `now` minus exactly N units, so such a leaf flips with time alone: `property_deadline_us` says when.
- Regexes are RE2 with search semantics, case-sensitive; an invalid pattern matches nothing
  (neither `regex` nor `not_regex`); validation is expected to refuse it at save.

Matchers are prepared once per (operator, value) and memoised, so the hot path neither compiles
regexes nor parses the expected value. This module never reads a clock: `now_us` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

import orjson
import re2

from cohorts.dates import DateValueError, relative_seconds
from cohorts.model import EventFilter, PersonLeaf
from cohorts.timebase import DAY_US, resolve_date_us
from cohorts.timestamps import TimestampError, parse_timestamp
from cohorts.vocab import DATE_OPERATORS

__all__ = ["canonical", "match_event", "match_property", "property_deadline_us", "property_matcher", "to_number"]

_Matcher = Callable[[Any, "int | None"], bool]


def canonical(value: Any) -> str | None:
    """The canonical string of a JSON value; None means "not set" (missing or null)."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return canonical(float(value))
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def to_number(value: Any) -> int | float | None:
    """A finite number from a number or a numeric string; booleans and everything else are None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if not text or "_" in text:
            return None
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def match_property(operator: str, expected: Any, properties: Mapping[str, Any], key: str, now_us: int) -> bool:
    """Does `properties[key] <operator> expected` hold at `now_us`? Negation is the caller's business."""
    return _matcher(operator, expected)(properties.get(key), now_us)


def property_matcher(operator: str, expected: Any) -> Callable[[Any, int | None], bool]:
    """`match_property` prepared once: call it with the raw property value (None = not set) and now."""
    return _matcher(operator, expected)


def match_event(filters: tuple[EventFilter, ...], properties: Mapping[str, Any], now_us: int | None = None) -> bool:
    """All event filters hold on the event's properties (same operator rules as person leaves).

    A relative date in an event filter needs an instant: pass the event's own timestamp. Without
    one (`now_us=None`), relative-date filters do not match.
    """
    for event_filter in filters:
        if not _matcher(event_filter.operator, event_filter.value)(properties.get(event_filter.key), now_us):
            return False
    return True


def property_deadline_us(leaf: PersonLeaf, properties: Mapping[str, Any], now_us: int) -> int | None:
    """The first instant after `now_us` at which a relative-date leaf flips with no new input, else None.

    Design §4.1: `-7d` is now minus exactly 7 days, so `before -7d` becomes true one microsecond after
    `value + 7 d`, `after -7d` becomes false at `value + 7 d`, and `is_date_exact -7d` holds while
    `now - 7 d` is inside the value's UTC day. A list value flips no earlier than its first element.
    """
    if leaf.operator not in DATE_OPERATORS:
        return None
    actual = _date_of(properties.get(leaf.key))
    if actual is None:
        return None
    best: int | None = None
    for item in _as_tuple(leaf.value):
        seconds = relative_seconds(item) if isinstance(item, str) else None
        if seconds is None:
            continue
        flip = _relative_flip(leaf.operator, actual, seconds * 1_000_000, now_us)
        if flip is not None and (best is None or flip < best):
            best = flip
    return best


def _relative_flip(operator: str, actual_us: int, offset_us: int, now_us: int) -> int | None:
    if operator == "is_date_before":  # actual < now - D  <=>  now > actual + D
        flip = actual_us + offset_us + 1
        return flip if flip > now_us else None
    if operator == "is_date_after":  # actual > now - D  <=>  now < actual + D
        flip = actual_us + offset_us
        return flip if flip > now_us else None
    day_start = actual_us - actual_us % DAY_US  # same UTC day  <=>  now in [ds + D, ds + D + 1 day)
    enter, leave = day_start + offset_us, day_start + DAY_US + offset_us
    if now_us < enter:
        return enter
    if now_us < leave:
        return leave
    return None


def _matcher(operator: str, expected: Any) -> _Matcher:
    try:
        return _prepared(operator, expected)
    except TypeError:  # an unhashable value (a list from raw JSON): prepare it without the memo
        return _prepare(operator, _freeze(expected))


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


@lru_cache(maxsize=8_192)
def _prepared(operator: str, expected: Any) -> _Matcher:
    return _prepare(operator, expected)


def _as_tuple(expected: Any) -> tuple[Any, ...]:
    return tuple(expected) if isinstance(expected, list | tuple) else (expected,)


def _never(_raw: Any, _now_us: int | None) -> bool:
    return False


def _prepare(operator: str, expected: Any) -> _Matcher:
    builder = _BUILDERS.get(operator)
    if builder is None:
        return _never
    return builder(expected)


def _complement(positive: _Matcher) -> _Matcher:
    def match(raw: Any, now_us: int | None) -> bool:
        return not positive(raw, now_us)

    return match


def _build_exact(expected: Any) -> _Matcher:
    wanted = frozenset(c for c in map(canonical, _as_tuple(expected)) if c is not None)

    def match(raw: Any, _now_us: int | None) -> bool:
        actual = canonical(raw)
        return actual is not None and actual in wanted

    return match


def _text_needles(expected: Any) -> tuple[str, ...]:
    return tuple(c.lower() for c in map(canonical, _as_tuple(expected)) if c is not None)


def _build_icontains(expected: Any) -> _Matcher:
    needles = _text_needles(expected)

    def match(raw: Any, _now_us: int | None) -> bool:
        actual = canonical(raw)
        if actual is None:
            return False
        folded = actual.lower()
        return any(needle in folded for needle in needles)

    return match


def _build_starts_with(expected: Any) -> _Matcher:
    needles = _text_needles(expected)

    def match(raw: Any, _now_us: int | None) -> bool:
        actual = canonical(raw)
        return actual is not None and actual.lower().startswith(needles)

    return match


def _build_ends_with(expected: Any) -> _Matcher:
    needles = _text_needles(expected)

    def match(raw: Any, _now_us: int | None) -> bool:
        actual = canonical(raw)
        return actual is not None and actual.lower().endswith(needles)

    return match


def _compile_patterns(expected: Any) -> tuple[Any, ...] | None:
    """Compiled RE2 patterns, or None when any pattern is invalid (then nothing matches)."""
    compiled = []
    for item in _as_tuple(expected):
        pattern = canonical(item)
        if pattern is None:
            return None
        try:
            compiled.append(re2.compile(pattern))
        except re2.error:
            return None
    return tuple(compiled)


def _build_regex(expected: Any) -> _Matcher:
    patterns = _compile_patterns(expected)
    if patterns is None:
        return _never

    def match(raw: Any, _now_us: int | None) -> bool:
        actual = canonical(raw)
        return actual is not None and any(p.search(actual) is not None for p in patterns)

    return match


def _build_not_regex(expected: Any) -> _Matcher:
    if _compile_patterns(expected) is None:
        return _never
    return _complement(_build_regex(expected))


def _build_numeric(compare: Callable[[Any, Any], bool]) -> Callable[[Any], _Matcher]:
    def build(expected: Any) -> _Matcher:
        bound = to_number(expected)
        if bound is None:
            return _never

        def match(raw: Any, _now_us: int | None) -> bool:
            actual = to_number(raw)
            return actual is not None and compare(actual, bound)

        return match

    return build


def _range_bounds(expected: Any) -> tuple[Any, Any] | None:
    if not isinstance(expected, list | tuple) or len(expected) != 2:
        return None
    low, high = to_number(expected[0]), to_number(expected[1])
    if low is None or high is None:
        return None
    return low, high


def _build_between(inside: bool) -> Callable[[Any], _Matcher]:
    def build(expected: Any) -> _Matcher:
        bounds = _range_bounds(expected)
        if bounds is None:
            return _never
        low, high = bounds

        def match(raw: Any, _now_us: int | None) -> bool:
            actual = to_number(raw)
            return actual is not None and (low <= actual <= high) == inside

        return match

    return build


def _build_is_set(expected: Any) -> _Matcher:
    def match(raw: Any, _now_us: int | None) -> bool:
        return raw is not None

    return match


def _build_is_not_set(expected: Any) -> _Matcher:
    def match(raw: Any, _now_us: int | None) -> bool:
        return raw is None

    return match


@lru_cache(maxsize=16_384)
def _parse_property_date(text: str) -> int | None:
    try:
        return parse_timestamp(text)
    except TimestampError:
        pass
    if relative_seconds(text) is not None:
        return None
    try:
        return resolve_date_us(text, 0)
    except DateValueError:
        return None


def _date_of(raw: Any) -> int | None:
    """Epoch µs of a date-valued property (ISO, PostHog's format or a written date); else None."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    return _parse_property_date(raw)


def _date_references(expected: Any) -> tuple[tuple[int | None, int | None], ...]:
    """(absolute_us, relative_offset_us) per element; unparseable elements are dropped."""
    references = []
    for item in _as_tuple(expected):
        if not isinstance(item, str):
            continue
        seconds = relative_seconds(item)
        if seconds is not None:
            references.append((None, seconds * 1_000_000))
            continue
        try:
            references.append((resolve_date_us(item, 0), None))
        except DateValueError:
            continue
    return tuple(references)


def _build_date(compare: Callable[[int, int], bool]) -> Callable[[Any], _Matcher]:
    def build(expected: Any) -> _Matcher:
        references = _date_references(expected)
        if not references:
            return _never

        def match(raw: Any, now_us: int | None) -> bool:
            actual = _date_of(raw)
            if actual is None:
                return False
            for absolute, offset in references:
                if absolute is None:
                    if now_us is None or offset is None:
                        continue
                    absolute = now_us - offset
                if compare(actual, absolute):
                    return True
            return False

        return match

    return build


def _same_utc_day(actual_us: int, reference_us: int) -> bool:
    return actual_us // DAY_US == reference_us // DAY_US


_BUILDERS: Final[dict[str, Callable[[Any], _Matcher]]] = {
    "exact": _build_exact,
    "is_not": lambda expected: _complement(_build_exact(expected)),
    "icontains": _build_icontains,
    "not_icontains": lambda expected: _complement(_build_icontains(expected)),
    "starts_with": _build_starts_with,
    "not_starts_with": lambda expected: _complement(_build_starts_with(expected)),
    "ends_with": _build_ends_with,
    "not_ends_with": lambda expected: _complement(_build_ends_with(expected)),
    "regex": _build_regex,
    "not_regex": _build_not_regex,
    "gt": _build_numeric(lambda actual, bound: actual > bound),
    "gte": _build_numeric(lambda actual, bound: actual >= bound),
    "min": _build_numeric(lambda actual, bound: actual >= bound),
    "lt": _build_numeric(lambda actual, bound: actual < bound),
    "lte": _build_numeric(lambda actual, bound: actual <= bound),
    "max": _build_numeric(lambda actual, bound: actual <= bound),
    "between": _build_between(inside=True),
    "not_between": _build_between(inside=False),
    "is_set": _build_is_set,
    "is_not_set": _build_is_not_set,
    "is_date_before": _build_date(lambda actual, reference: actual < reference),
    "is_date_after": _build_date(lambda actual, reference: actual > reference),
    "is_date_exact": _build_date(_same_utc_day),
}
