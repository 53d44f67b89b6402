"""Save-time validation of cohort definitions: raw `filters` JSON in, immutable model tree out.

What this module owns (design §4, §8; reference §2):
1. The grammar, mirrored from PostHog's pydantic `CohortFilters` (extra keys forbidden, the same
   discriminated unions), so schema errors read as PostHog's do: "Missing required keys for
   {kind} filter: {fields}" or the `str()` of pydantic's error list (reference §2.11).
2. The engine's limits: whatever the evaluator cannot compute is refused here with a 400 that
   names it (actions, HogQL/element event filters, `person_metadata`, `filterTestAccounts`,
   unknown operators, bad regexes, incomplete behavioural kinds, oversized definitions), never at
   calculation time (design §4, §8). Validation and evaluation read the same `cohorts.vocab` tables.
3. Normalisation on save (reference §2.10): nulls dropped, `negation` on every leaf, ints coerced,
   the single-element unwrap of §2.3, and a `conditionHash` per leaf taken from the model.

Invariants: `parse_filters` returns None exactly when a valid definition has no leaf; a tree it
returns is within `MAX_DEPTH` / `MAX_LEAVES` and every leaf is computable. `normalise_filters`
is idempotent. This module never looks up other cohorts (see `cohorts.graph`,
`cohorts.cohort_type`), reads a clock, or performs I/O.

Exceptions:
    ValueError
    └── FilterError        detail, attr ("filters" unless said otherwise), code ("invalid_input")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Union

import re2
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from cohorts.dates import DateValueError, resolve_date
from cohorts.model import (
    BehavioralLeaf,
    CohortDefinition,
    CohortLeaf,
    EventFilter,
    Group,
    Node,
    PersonLeaf,
    iter_leaves,
)
from cohorts.vocab import (
    BEHAVIORAL_KINDS,
    COUNT_OPERATORS,
    DATE_OPERATORS,
    MAX_DEPTH,
    MAX_LEAVES,
    MAX_TOTAL_PERIODS,
    PERSON_OPERATORS,
    PRESENCE_OPERATORS,
    RANGE_OPERATORS,
    UNIT_SECONDS,
    UNSUPPORTED_PERSON_OPERATORS,
    UNWRAPPED_OPERATORS,
)
from cohorts.wire import CatalogRecord

__all__ = [
    "FilterError",
    "compile_pattern",
    "definition_from_record",
    "has_behavioral",
    "has_criteria",
    "normalise_filters",
    "parse_filters",
]

NO_PROPERTIES = "Must contain a 'properties' key with type and values"

#: Operators PostHog checks date values for at save (reference §2.3). We also check
#: `is_date_exact`, since the engine needs a date to compare with (design §4).
_POSTHOG_DATE_OPERATORS = frozenset({"is_date_after", "is_date_before"})
_PERSON_METADATA_FIELDS = ("created_at",)
#: Kinds whose `operator` is a count comparison (reference §2.7).
_COUNTING_KINDS = frozenset({"performed_event_multiple", "performed_event_regularly"})
_GROUP_TYPES = ("AND", "OR")


class FilterError(ValueError):
    """A definition (or a related field) the service refuses; the api renders it as a 400.

    `attr` is the request field it belongs to, `code` the error envelope's code (reference §0.3).
    """

    def __init__(self, detail: str, *, attr: str | None = "filters", code: str = "invalid_input") -> None:
        super().__init__(detail)
        self.detail = detail
        self.attr = attr
        self.code = code


# --- The grammar: PostHog's pydantic models, mirrored (reference §2.1-§2.7) ---------------------


def _date_error(value: object, subject: str) -> str:
    """PostHog's text (reference §2.3); `subject` is "operator 'is_date_before'" or a field name."""
    return (
        f"Invalid date value '{value}' for {subject}. "
        "Expected a relative date (e.g., '-7d', '30d') or an ISO 8601 date (e.g., '2024-01-15')."
    )


def _is_date(value: object) -> bool:
    try:
        resolve_date(value, 0)
    except DateValueError:
        return False
    return True


class _ServerFields(BaseModel):
    """Keys the server adds to a stored leaf (reference §1.0); accepted back, never trusted."""

    bytecode: list[Any] | None = None
    bytecode_error: str | None = None
    conditionHash: str | None = None


class _EventPropFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["event", "element"]
    key: str
    # Required in PostHog; optional here so that `is_set` without a value survives the
    # null-dropping dump and normalisation stays idempotent. A missing value is refused by
    # the engine check for every other operator.
    value: Any | None = None
    operator: str | None = None


class _HogQLFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["hogql"]
    key: str
    value: Any | None = None


class _BehavioralFilter(_ServerFields):
    model_config = ConfigDict(extra="forbid")

    type: Literal["behavioral"]
    key: Union[str, int]  # noqa: UP007 - PostHog's union order (str first) decides the coercion
    value: str
    event_type: str
    time_value: int | None = None
    time_interval: str | None = None
    negation: bool = False
    operator: str | None = None
    operator_value: int | None = None
    seq_time_interval: str | None = None
    seq_time_value: int | None = None
    seq_event: Union[str, int] | None = None  # noqa: UP007
    seq_event_type: str | None = None
    total_periods: int | None = None
    min_periods: int | None = None
    event_filters: list[Union[_EventPropFilter, _HogQLFilter]] | None = None  # noqa: UP007
    explicit_datetime: str | None = None
    explicit_datetime_to: str | None = None


class _CohortFilter(_ServerFields):
    model_config = ConfigDict(extra="forbid")

    type: Literal["cohort"]
    key: Literal["id"]
    value: int
    negation: bool = False

    @model_validator(mode="before")
    @classmethod
    def _unwrap_single_id(cls, data: Any) -> Any:
        """`[17]` is stored as `17` (reference §2.5; PostHog's cohort_type check takes one element)."""
        if isinstance(data, dict) and isinstance(data.get("value"), list) and len(data["value"]) == 1:
            return {**data, "value": data["value"][0]}
        return data


class _PersonValue(_ServerFields):
    """Value/operator rules shared by `person` and `person_metadata` leaves (reference §2.3)."""

    _filter_noun: ClassVar[str] = "person"

    operator: str | None = None
    value: Any | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap_single_string(cls, data: Any) -> Any:
        """`["x"]` is stored as `"x"` for the operators of reference §2.3; `[null]`, `[]` stay."""
        if (
            isinstance(data, dict)
            and isinstance(data.get("operator"), str)
            and data["operator"] in UNWRAPPED_OPERATORS
            and isinstance(data.get("value"), list)
            and len(data["value"]) == 1
            and isinstance(data["value"][0], str)
        ):
            return {**data, "value": data["value"][0]}
        return data

    @model_validator(mode="after")
    def _missing_keys_check(self) -> _PersonValue:
        missing: list[str] = []
        if self.value is None and self.operator not in ("is_set", "is_not_set"):
            missing.append("value")
        if self.operator is None:
            missing.append("operator")
        if missing:
            raise ValueError(f"Missing required keys for {self._filter_noun} filter: {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _validate_date_value(self) -> _PersonValue:
        if self.operator in _POSTHOG_DATE_OPERATORS and self.value is not None and not _is_date(self.value):
            raise ValueError(_date_error(self.value, f"operator '{self.operator}'"))
        return self


class _PersonFilter(_PersonValue):
    model_config = ConfigDict(extra="forbid")
    _filter_noun: ClassVar[str] = "person"

    type: Literal["person"]
    key: str
    negation: bool = False


class _PersonMetadataFilter(_PersonValue):
    model_config = ConfigDict(extra="forbid")
    _filter_noun: ClassVar[str] = "person_metadata"

    type: Literal["person_metadata"]
    key: str
    negation: bool = False

    @model_validator(mode="after")
    def _validate_key(self) -> _PersonMetadataFilter:
        if self.key not in _PERSON_METADATA_FIELDS:
            allowed = ", ".join(sorted(_PERSON_METADATA_FIELDS))
            raise ValueError(f"Unsupported person_metadata key '{self.key}'. Allowed keys: {allowed}.")
        return self


_PropertyFilter = Annotated[
    Union[_BehavioralFilter, _CohortFilter, _PersonFilter, _PersonMetadataFilter],  # noqa: UP007
    Field(discriminator="type"),
]
_FilterOrGroup = Annotated[Union[_PropertyFilter, "_FilterGroup"], Field(discriminator="type")]


class _FilterGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["AND", "OR"]
    values: list[_FilterOrGroup]


class _CohortFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    properties: _FilterGroup
    filterTestAccounts: bool | None = None


_FilterGroup.model_rebuild()
_CohortFilters.model_rebuild()

_SERVER_FIELDS = frozenset(_ServerFields.model_fields)


def _schema_error_message(exc: PydanticValidationError) -> str:
    """PostHog's `_cohort_error_message`: the first missing-key error reads as a sentence, else
    the raw error list (reference §2.11)."""
    errors = exc.errors(include_url=False)
    for err in errors:
        if err["type"] == "value_error":
            msg = err["msg"]
            idx = msg.find("Missing required keys")
            if idx != -1:
                return msg[idx:]
        if err["type"] == "missing":
            loc = [str(part) for part in err["loc"]]
            for kind in ("behavioral", "cohort", "person_metadata", "person"):
                if kind in loc:
                    return f"Missing required keys for {kind} filter: {loc[-1]}"
    return str(errors)


# --- Size limits, checked on the raw JSON before pydantic walks it ------------------------------


def _check_size(properties: object) -> None:
    """Refuse definitions deeper than MAX_DEPTH groups or wider than MAX_LEAVES leaves.

    Runs iteratively on the raw JSON, so a hostile nesting cannot exhaust the recursion limit of
    the schema validation that follows. The root group is depth 1.
    """
    leaves = groups = 0
    stack: list[tuple[object, int]] = [(properties, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict):
            continue
        values = node.get("values")
        if node.get("type") in _GROUP_TYPES and isinstance(values, list):
            if depth > MAX_DEPTH:
                raise FilterError(f"Cohort definitions can nest groups at most {MAX_DEPTH} levels deep.")
            groups += 1
            if groups > MAX_LEAVES:
                raise FilterError(f"Cohort definitions can have at most {MAX_LEAVES} groups.")
            stack.extend((child, depth + 1) for child in values)
        else:
            leaves += 1
            if leaves > MAX_LEAVES:
                raise FilterError(f"Cohort definitions can have at most {MAX_LEAVES} criteria.")


# --- Engine checks and model building ---------------------------------------------------------


def compile_pattern(pattern: str) -> Any:
    """Compile a `regex`/`not_regex` value with RE2, the engine PostHog evaluates them with.

    Raises `re2.error`; RE2's own stderr logging of bad patterns is switched off.
    """
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return False


def _freeze(value: Any) -> Any:
    """Lists become tuples so leaves stay hashable (cohorts.model)."""
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def _check_operator_value(operator: str, value: Any, subject: str) -> None:
    """What the engine needs of an operator and its value (design §4.1), for person and event filters."""
    if operator in UNSUPPORTED_PERSON_OPERATORS or operator not in PERSON_OPERATORS:
        supported = ", ".join(sorted(PERSON_OPERATORS))
        raise FilterError(f"Operator '{operator}' is not supported in {subject}. Supported operators: {supported}.")
    if operator in PRESENCE_OPERATORS:
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict | list):
            raise FilterError(f"Unsupported value {value!r} in {subject}: values must be scalars or a list of scalars.")
    if operator in ("regex", "not_regex"):
        for item in items:
            if not isinstance(item, str):
                raise FilterError(f"Invalid regex {item!r} in {subject}: a pattern must be a string.")
            try:
                compile_pattern(item)
            except re2.error as exc:
                reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
                raise FilterError(f"Invalid regex pattern '{item}' in {subject}: {reason}") from None
    elif operator in RANGE_OPERATORS:
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            raise FilterError(
                f"Operator '{operator}' in {subject} needs a value of two numbers [min, max], got {value!r}."
            )
    elif operator in DATE_OPERATORS and not _is_date(value):
        raise FilterError(_date_error(value, f"operator '{operator}'"))


def _person_leaf(raw: _PersonFilter) -> PersonLeaf:
    _check_operator_value(raw.operator, raw.value, f"person filter '{raw.key}'")
    value = None if raw.operator in PRESENCE_OPERATORS else _freeze(raw.value)
    return PersonLeaf(key=raw.key, operator=raw.operator, value=value, negation=raw.negation)


def _event_filter(raw: _EventPropFilter | _HogQLFilter, event: str) -> EventFilter:
    if raw.type != "event":
        raise FilterError(
            f"event_filters of type '{raw.type}' are not supported (behavioral filter on '{event}'): "
            "only 'event' property filters can be computed."
        )
    operator = raw.operator or "exact"
    subject = f"event filter '{raw.key}' of behavioral filter on '{event}'"
    if raw.value is None and operator not in PRESENCE_OPERATORS:
        raise FilterError(f"Missing value in {subject} for operator '{operator}'.")
    _check_operator_value(operator, raw.value, subject)
    value = None if operator in PRESENCE_OPERATORS else _freeze(raw.value)
    return EventFilter(key=raw.key, operator=operator, value=value)


def _missing_behavioral_attrs(raw: _BehavioralFilter) -> list[str]:
    missing: list[str] = []
    for attr in BEHAVIORAL_KINDS[raw.value]:
        if attr == "window":
            if raw.explicit_datetime is None and raw.time_value is None:
                missing.append("time_value")
            if raw.explicit_datetime is None and raw.time_interval is None:
                missing.append("time_interval")
        elif getattr(raw, attr) is None and attr not in missing:
            missing.append(attr)
    return missing


def _behavioral_leaf(raw: _BehavioralFilter) -> BehavioralLeaf:
    """Design §4: only event-name matching is computable; each kind needs its attributes."""
    event = str(raw.key)
    if raw.event_type != "events":
        raise FilterError(
            f"Behavioral filters with event_type '{raw.event_type}' are not supported: "
            "only 'events' (matched by event name) can be computed."
        )
    if raw.value not in BEHAVIORAL_KINDS:
        supported = ", ".join(BEHAVIORAL_KINDS)
        raise FilterError(f"Behavioral filter value '{raw.value}' is not supported. Supported values: {supported}.")
    for name in ("time_interval", "seq_time_interval"):
        unit = getattr(raw, name)
        if unit is not None and unit not in UNIT_SECONDS:
            raise FilterError(f"Unknown {name} '{unit}'. Supported: {', '.join(UNIT_SECONDS)}.")
    for name in ("time_value", "seq_time_value", "total_periods", "min_periods"):
        amount = getattr(raw, name)
        if amount is not None and amount <= 0:
            raise FilterError(f"{name} must be a positive integer, got {amount}.")
    if raw.operator_value is not None and raw.operator_value < 0:
        raise FilterError(f"operator_value must not be negative, got {raw.operator_value}.")
    missing = _missing_behavioral_attrs(raw)
    if missing:
        raise FilterError(f"Behavioral filter '{raw.value}' on '{event}' needs {', '.join(missing)}.")
    if raw.value in _COUNTING_KINDS and raw.operator is not None and raw.operator not in COUNT_OPERATORS:
        supported = ", ".join(sorted(COUNT_OPERATORS))
        raise FilterError(f"Count operator '{raw.operator}' is not supported. Supported operators: {supported}.")
    if raw.total_periods is not None and raw.total_periods > MAX_TOTAL_PERIODS:
        raise FilterError(f"total_periods can be at most {MAX_TOTAL_PERIODS}, got {raw.total_periods}.")
    if raw.min_periods is not None and raw.total_periods is not None and raw.min_periods > raw.total_periods:
        raise FilterError(
            f"min_periods ({raw.min_periods}) cannot be greater than total_periods ({raw.total_periods})."
        )
    for name in ("explicit_datetime", "explicit_datetime_to"):
        text = getattr(raw, name)
        if text is not None and not _is_date(text):
            raise FilterError(_date_error(text, name))
    if raw.seq_event_type is not None and raw.seq_event_type != "events":
        raise FilterError(
            f"Behavioral filters with seq_event_type '{raw.seq_event_type}' are not supported: "
            "only 'events' (matched by event name) can be computed."
        )
    return BehavioralLeaf(
        kind=raw.value,
        event=event,
        event_filters=tuple(_event_filter(f, event) for f in raw.event_filters or ()),
        time_value=raw.time_value,
        time_interval=raw.time_interval,
        explicit_datetime=raw.explicit_datetime,
        explicit_datetime_to=raw.explicit_datetime_to,
        operator=raw.operator,
        operator_value=raw.operator_value,
        seq_event=None if raw.seq_event is None else str(raw.seq_event),
        seq_time_value=raw.seq_time_value,
        seq_time_interval=raw.seq_time_interval,
        total_periods=raw.total_periods,
        min_periods=raw.min_periods,
        negation=raw.negation,
    )


def _build(raw: _FilterGroup) -> tuple[Group, dict[str, Any]]:
    """The model group and its normalised JSON (reference §2.10), built in one walk."""
    nodes: list[Node] = []
    dumped: list[dict[str, Any]] = []
    for child in raw.values:
        if isinstance(child, _FilterGroup):
            node, out = _build(child)
        else:
            node = _leaf(child)
            dump = child.model_dump(exclude_none=True, exclude=_SERVER_FIELDS)
            out = {"type": dump.pop("type"), "key": dump.pop("key"), **dump, "conditionHash": node.condition_hash}
        nodes.append(node)
        dumped.append(out)
    return Group(type=raw.type, values=tuple(nodes)), {"type": raw.type, "values": dumped}


def _leaf(raw: _BehavioralFilter | _CohortFilter | _PersonFilter | _PersonMetadataFilter) -> Node:
    if isinstance(raw, _PersonFilter):
        return _person_leaf(raw)
    if isinstance(raw, _CohortFilter):
        return CohortLeaf(cohort_id=raw.value, negation=raw.negation)
    if isinstance(raw, _BehavioralFilter):
        return _behavioral_leaf(raw)
    raise FilterError(
        f"person_metadata filters (on '{raw.key}') are not supported: use a person property filter instead."
    )


def _validate(raw: object) -> tuple[Group | None, dict[str, Any]]:
    if not isinstance(raw, dict) or "properties" not in raw:
        raise FilterError(NO_PROPERTIES)
    properties = raw["properties"]
    empty = properties is None or properties == {}
    if not empty:
        _check_size(properties)
    candidate = {**raw, "properties": {"type": "AND", "values": []}} if empty else raw
    try:
        parsed = _CohortFilters.model_validate(candidate)
    except PydanticValidationError as exc:
        raise FilterError(_schema_error_message(exc)) from None
    if parsed.filterTestAccounts:
        raise FilterError(
            "filterTestAccounts is not supported: this service has no test-account filters. "
            "Add the exclusions as criteria instead."
        )
    if empty:
        return None, {"properties": {}}
    root, dumped = _build(parsed.properties)
    normalised: dict[str, Any] = {"properties": dumped}
    if parsed.filterTestAccounts is not None:
        normalised["filterTestAccounts"] = parsed.filterTestAccounts
    if next(iter_leaves(root), None) is None:
        return None, normalised
    return root, normalised


# --- Public surface -------------------------------------------------------------------------


def parse_filters(raw: object) -> Group | None:
    """The model tree of a request's `filters`, or None when it has no criteria.

    Raises FilterError (attr "filters") with PostHog's texts for schema problems and a message
    naming the construct for anything the engine cannot compute (design §8).
    """
    return _validate(raw)[0]


def normalise_filters(raw: dict[str, Any]) -> dict[str, Any]:
    """What GET returns for valid `filters` (reference §2.10); idempotent.

    Nulls are dropped, every leaf carries `negation` and a `conditionHash` (the model leaf's
    `condition_hash`; no bytecode is produced). Raises FilterError like `parse_filters`.
    """
    return _validate(raw)[1]


def has_criteria(raw: object) -> bool:
    """Whether `filters` holds at least one criterion (reference §2.1: criteria-less filters of a
    static cohort are accepted unvalidated). Anything malformed counts as criteria, so that it
    gets validated rather than silently ignored."""
    if not isinstance(raw, dict):
        return False
    properties = raw.get("properties")
    if properties is None or properties == {}:
        return False
    stack: list[object] = [properties]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            return True
        values = node.get("values")
        if node.get("type") not in _GROUP_TYPES or not isinstance(values, list):
            return True
        stack.extend(values)
    return False


def definition_from_record(record: CatalogRecord) -> CohortDefinition:
    """Parse a catalog record's stored filters (design §3): root None for static cohorts and for
    definitions without criteria. Raises FilterError if the stored filters are invalid."""
    root = None
    if not record.is_static and has_criteria(record.filters):
        root = parse_filters(record.filters)
    return CohortDefinition(
        id=record.id,
        team_id=record.team_id,
        version=record.version,
        is_static=record.is_static,
        deleted=record.deleted,
        root=root,
        name=record.name,
        filters=record.filters,
    )


def has_behavioral(root: Group | None, lookup: Callable[[int], Group | None]) -> bool:
    """Any behavioural leaf in `root` or in the cohorts it references, at any depth.

    `lookup(cohort_id)` gives a referenced cohort's root (None for static, unknown or
    criteria-less cohorts, which contribute nothing). Each cohort is visited once, so cycles end.
    """
    seen: set[int] = set()
    pending: list[Group | None] = [root]
    while pending:
        for leaf in iter_leaves(pending.pop()):
            if isinstance(leaf, BehavioralLeaf):
                return True
            if isinstance(leaf, CohortLeaf) and leaf.cohort_id not in seen:
                seen.add(leaf.cohort_id)
                pending.append(lookup(leaf.cohort_id))
    return False
