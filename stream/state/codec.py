"""The person record's byte layout: versioned, version byte first (design §5).

Format 2 (written; all integers little-endian):

    offset  size  field
    0       1     format version = 2
    1       8     next_deadline_us, int64 (INT64_MIN = none)    <- the deadline scan reads only this
    9       1     flags: bit 0 known, bit 1 deleted
    10      8     person_version, int64 (-1 = no person record yet)
    18      8     evaluated_at_us, int64
    26      8     control_flip_offset, int64: highest control offset among outbox flips (-1 = none);
                  derived from the outbox, so the rebuild after an assignment finds records whose
                  tick/recalculate flips may need re-emission without decoding every body
    34      ...   orjson array [properties, matchers, static, members, deadlines, applied, outbox]
                  matchers  = {matcher_hash: [first_seen_us | null, {granularity: [b0, c0, b1, c1, ...]},
                               [timestamps_us ...], live_from, backfilled]}   (buckets ascending)
                              live_from = [partition, offset, ...] | null, backfilled = [partition,
                              offset, ...]: both left out when both are empty (null: not known)
                  static    = [cohort_id ...] ascending
                  members   = [cohort_id, version, ...] flat, ascending by cohort
                  deadlines = [cohort_id, deadline_us, ...] flat, ascending by cohort
                  applied   = [source, partition, offset, ...] flat, ascending by (source, partition)
                  outbox    = [[source, partition, offset, at_us, cohort_id, entered 0|1, version, ...] ...]
                              oldest first; consecutive flips with one origin and instant share a group

Format 1 (read only): the same header with version 1, then [properties, matchers, static,
[[cohort_id, version] ...], [[source, partition, offset] ...], [[cohort_id, entered, version, at_us,
source, partition, offset] ...]]. It has no per-cohort deadlines: such a record decodes with
`deadlines = None` and is evaluated in full the next time it is touched.

Format 2 exists for speed: flat lists and grouped outbox flips decode into far fewer objects, and
the outbox, most of a format-1 record, takes about a quarter of the bytes.

An unknown version or a malformed body raises `CodecError`: a record this build cannot read must
stop the worker loudly rather than be silently rewritten. Changing the layout means a new version
number and a decoder for every version still on disk.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import orjson

from stream.state.record import SOURCE_CONTROL, MatcherState, Outbox, OutboxFlip, PersonRecord

__all__ = [
    "FORMAT_VERSION",
    "CodecError",
    "RecordSketch",
    "decode",
    "encode",
    "peek_control_flip_offset",
    "peek_deadline",
    "sketch",
]

FORMAT_VERSION: Final[int] = 2
#: Versions this build decodes.
_READABLE: Final[frozenset[int]] = frozenset({1, 2})

_HEADER: Final = struct.Struct("<BqBqqq")
_CONTROL_OFFSET: Final = struct.Struct("<q")
_CONTROL_OFFSET_AT: Final[int] = 26
_DEADLINE: Final = struct.Struct("<q")
_NO_DEADLINE: Final[int] = -(2**63)
_KNOWN: Final[int] = 1
_DELETED: Final[int] = 2
_NO_BUCKETS: Final[Mapping[int, int]] = {}


class CodecError(ValueError):
    """Bytes that are not a person record this build can read."""


def encode(record: PersonRecord | RecordSketch) -> bytes:
    """Format 2 bytes; equal records give equal bytes (the store skips writes that change nothing)."""
    if isinstance(record, RecordSketch):
        return record.encoded()
    matchers = {matcher_hash: _matcher_body(state) for matcher_hash, state in record.matchers.items()}
    body = [
        record.properties,
        matchers,
        sorted(record.static),
        _flatten(record.members),
        _flatten(record.deadlines or {}),
        _flatten_applied(record.applied),
        record.outbox.groups(),
    ]
    return _header(record) + orjson.dumps(body)


def _header(record: PersonRecord | RecordSketch) -> bytes:
    """The fixed header of format 2 (module docstring), the same for a record and a sketch."""
    deadline = _NO_DEADLINE if record.next_deadline_us is None else record.next_deadline_us
    flags = (_KNOWN if record.known else 0) | (_DELETED if record.deleted else 0)
    return _HEADER.pack(
        FORMAT_VERSION,
        deadline,
        flags,
        record.person_version,
        record.evaluated_at_us,
        record.outbox.highest_offset(SOURCE_CONTROL),
    )


def _read_header(raw: bytes) -> tuple[int, int | None, int, int, int]:
    """(format version, next deadline, flags, person version, last evaluation) of a record's bytes."""
    version = _check_version(raw)
    if len(raw) < _HEADER.size:
        raise CodecError(f"person record truncated: {len(raw)} bytes")
    _, deadline, flags, person_version, evaluated_at_us, _ = _HEADER.unpack_from(raw)
    return version, (None if deadline == _NO_DEADLINE else deadline), flags, person_version, evaluated_at_us


def decode(raw: bytes) -> PersonRecord:
    version, deadline, flags, person_version, evaluated_at_us = _read_header(raw)
    try:
        body = orjson.loads(raw[_HEADER.size :])
        if version == 1:
            properties, matchers, static, members, applied, outbox = body
            member_map = {cohort_id: member_version for cohort_id, member_version in members}
            deadlines = None
            applied_map = {(source, partition): offset for source, partition, offset in applied}
            flips = Outbox(
                OutboxFlip(cohort_id, bool(entered), flip_version, at_us, (source, partition, offset))
                for cohort_id, entered, flip_version, at_us, source, partition, offset in outbox
            )
        else:
            properties, matchers, static, members, deadline_list, applied, outbox = body
            member_map = _unflatten(members)
            deadlines = _unflatten(deadline_list)
            if len(applied) % 3:
                raise ValueError("applied is not a list of triples")
            triples = iter(applied)
            applied_map = {(s, p): offset for s, p, offset in zip(triples, triples, triples)}  # noqa: B905 - checked
            flips = Outbox.from_groups(outbox)
        return PersonRecord(  # positional (the fields' order): cheaper than keywords, once per input
            bool(flags & _KNOWN),
            bool(flags & _DELETED),
            person_version,
            properties,
            {h: _matcher_state(state, version) for h, state in matchers.items()} if matchers else {},
            set(static),
            member_map,
            deadline,
            deadlines,
            evaluated_at_us,
            applied_map,
            flips,
        )
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CodecError(f"person record body malformed: {exc}") from exc


class RecordSketch:
    """A record decoded only as far as a recalculation needs, and written back from that.

    Header fields, properties and static memberships are decoded; members and per-cohort deadlines
    stay flat lists until something asks for them as dicts (`members`, `deadlines`): the first look
    at a person reads them through `is_member`, `member_version`, `member_ids` and `deadline_of`,
    and building the two dicts cost three quarters of what parsing the whole body does. Matcher
    state stays in its stored form until a leaf asks for it (it is a
    `cohorts.evaluate.PersonFacts`), and the idempotence map and the outbox groups are kept as read
    (the outbox is built when touched). `stream.fold.recalculate` settles it like a record; `encode`
    writes it back. Only a format-2 sketch can be written (`version`); its bytes equal those of the
    decoded record when nothing changed.
    """

    __slots__ = (
        "_body",
        "_deadlines",
        "_matchers",
        "_member_ids",
        "_members",
        "_outbox",
        "_static",
        "deleted",
        "evaluated_at_us",
        "known",
        "next_deadline_us",
        "person_version",
        "properties",
        "version",
    )

    def __init__(self, raw: bytes) -> None:
        self.version, deadline, flags, person_version, evaluated_at_us = _read_header(raw)
        self.known = bool(flags & _KNOWN)
        self.deleted = bool(flags & _DELETED)
        self.person_version: int = person_version
        self.evaluated_at_us: int = evaluated_at_us
        self.next_deadline_us: int | None = deadline
        self._outbox: Outbox | None = None
        self._members: dict[int, int] | None = None
        self._member_ids: list[int] | None = None
        self._deadlines: dict[int, int] | None = None
        try:
            body = self._body = orjson.loads(raw[_HEADER.size :])
            self.properties: dict[str, Any] = body[0]
            self._matchers: dict[str, list[Any]] = body[1]
            self._static = frozenset(body[2])
            if self.version == 1:
                self._members = {cohort_id: member_version for cohort_id, member_version in body[3]}
            elif len(body[3]) % 2 or len(body[4]) % 2:
                raise ValueError("odd flat list")
            if not isinstance(self.properties, dict) or not isinstance(self._matchers, dict):
                raise ValueError("properties and matchers must be objects")
        except (orjson.JSONDecodeError, TypeError, ValueError, IndexError) as exc:
            raise CodecError(f"person record body malformed: {exc}") from exc

    # --- members and deadlines: flat until asked for as dicts -----------------------------------

    @property
    def members(self) -> dict[int, int]:
        """cohort id -> version of the cohorts the person is a member of (built on first use)."""
        if self._members is None:
            self._members = _unflatten(self._body[3])
        return self._members

    @property
    def deadlines(self) -> dict[int, int] | None:
        """Per-cohort deadlines (built on first use); None for a format-1 record, which has none."""
        if self._deadlines is None and self.version != 1:
            self._deadlines = _unflatten(self._body[4])
        return self._deadlines

    @deadlines.setter
    def deadlines(self, deadlines: dict[int, int] | None) -> None:
        self._deadlines = deadlines

    def member_ids(self) -> Collection[int]:
        return self._flat_member_ids() if self._members is None else self._members.keys()

    def is_member(self, cohort_id: int) -> bool:
        return cohort_id in self.member_ids()

    def member_version(self, cohort_id: int) -> int | None:
        if self._members is not None:
            return self._members.get(cohort_id)
        return _flat_get(self._body[3], self._flat_member_ids(), cohort_id)

    def deadline_of(self, cohort_id: int) -> int | None:
        """The cohort's own deadline (None: none kept, or a format-1 record, which keeps none)."""
        if self._deadlines is not None:
            return self._deadlines.get(cohort_id)
        if self.version == 1:
            return None
        flat = self._body[4]
        return _flat_get(flat, flat[::2], cohort_id)

    def _flat_member_ids(self) -> list[int]:
        if self._member_ids is None:
            self._member_ids = self._body[3][::2]
        return self._member_ids

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            if self.version != FORMAT_VERSION:
                raise CodecError(f"a format-{self.version} sketch has no outbox to settle; decode the record")
            try:
                self._outbox = Outbox.from_groups(self._body[6])
            except (ValueError, IndexError) as exc:
                raise CodecError(f"person record body malformed: {exc}") from exc
        return self._outbox

    def buckets(self, matcher_hash: str, granularity: str) -> Mapping[int, int]:
        state = self._matchers.get(matcher_hash)
        if state is None:
            return _NO_BUCKETS
        flat = state[1].get(granularity)
        return _NO_BUCKETS if flat is None else _unflatten(flat)

    def first_seen_us(self, matcher_hash: str) -> int | None:
        state = self._matchers.get(matcher_hash)
        return None if state is None else state[0]

    def timestamps_us(self, matcher_hash: str) -> Sequence[int]:
        state = self._matchers.get(matcher_hash)
        return () if state is None else state[2]

    def is_static_member(self, cohort_id: int) -> bool:
        return cohort_id in self._static

    def encoded(self) -> bytes:
        """Format 2 bytes of the sketch as it is now (what `encode` returns for it)."""
        if self.version != FORMAT_VERSION:
            raise CodecError(f"a format-{self.version} sketch cannot be written; decode the record")
        body = self._body
        members = body[3] if self._members is None else _flatten(self._members)
        deadlines = body[4] if self._deadlines is None else _flatten(self._deadlines)
        return _header(self) + orjson.dumps(
            [self.properties, self._matchers, body[2], members, deadlines, body[5], self.outbox.groups()]
        )


def sketch(raw: bytes) -> RecordSketch:
    """`RecordSketch` of a record's bytes (CodecError as `decode`, for what it reads)."""
    return RecordSketch(raw)


def peek_deadline(raw: bytes) -> int | None:
    """The next deadline without decoding the body: the deadline index rebuild reads only this."""
    _check_version(raw)
    if len(raw) < 1 + _DEADLINE.size:
        raise CodecError(f"person record truncated: {len(raw)} bytes")
    (deadline,) = _DEADLINE.unpack_from(raw, 1)
    return None if deadline == _NO_DEADLINE else deadline


def peek_control_flip_offset(raw: bytes) -> int:
    """The highest control-topic offset that caused a flip still in the outbox (-1: none)."""
    _check_version(raw)
    if len(raw) < _HEADER.size:
        raise CodecError(f"person record truncated: {len(raw)} bytes")
    (offset,) = _CONTROL_OFFSET.unpack_from(raw, _CONTROL_OFFSET_AT)
    return offset


def _check_version(raw: bytes) -> int:
    if not raw:
        raise CodecError("empty person record")
    if raw[0] not in _READABLE:
        readable = ", ".join(map(str, sorted(_READABLE)))
        raise CodecError(f"unknown person record format version {raw[0]} (this build reads {readable})")
    return raw[0]


def _flatten_applied(applied: dict[tuple[int, int], int]) -> list[int]:
    """[source, partition, offset, ...] ascending by (source, partition)."""
    flat: list[int] = []
    for (source, partition), offset in sorted(applied.items()):
        flat += (source, partition, offset)
    return flat


def _matcher_body(state: MatcherState) -> list[Any]:
    """[first_seen, buckets, timestamps], plus [live_from | null, backfilled] unless both are empty.

    Written for every matcher of every record, most holding a bucket or two, one live_from entry
    and no backfill: single entries are flattened here rather than through `_flatten`.
    """
    live_from = state.live_from
    backfilled = state.backfilled
    buckets: dict[str, list[int]] = {}
    for gran, counts in state.buckets.items():
        if len(counts) == 1:
            ((bucket, count),) = counts.items()
            buckets[gran] = [bucket, count]
        else:
            buckets[gran] = _flatten(counts)
    if live_from is None:
        return [state.first_seen_us, buckets, state.timestamps_us, None, _flatten(backfilled)]
    if live_from or backfilled:
        return [state.first_seen_us, buckets, state.timestamps_us, _flatten(live_from), _flatten(backfilled)]
    return [state.first_seen_us, buckets, state.timestamps_us]


def _matcher_state(body: list[Any], version: int) -> MatcherState:
    """The state of a stored matcher body (format 1 or 2). Read for every matcher of every record:
    the common small maps (none or one entry) are built here rather than through `_unflatten`,
    which does the same for them."""
    if len(body) == 5:
        first_seen, buckets, timestamps, live_flat, backfilled_flat = body
        if live_flat is None:
            live_from = None
        elif type(live_flat) is list and len(live_flat) == 2:
            live_from = {live_flat[0]: live_flat[1]}
        else:
            live_from = _unflatten(live_flat)
        backfilled = {} if type(backfilled_flat) is list and not backfilled_flat else _unflatten(backfilled_flat)
    elif len(body) == 3:  # format 1 never recorded where live counting began; format 2 omits two empty maps
        first_seen, buckets, timestamps = body
        live_from, backfilled = (None if version == 1 else {}), {}
    else:
        raise ValueError(f"matcher state of {len(body)} fields")
    by_granularity: dict[str, dict[int, int]] = {}
    for gran, flat in buckets.items():
        if type(flat) is list and len(flat) == 2:
            by_granularity[gran] = {flat[0]: flat[1]}
        else:
            by_granularity[gran] = _unflatten(flat)
    return MatcherState(first_seen, by_granularity, timestamps, live_from, backfilled)


def _flatten(pairs: dict[int, int]) -> list[int]:
    """[k0, v0, k1, v1, ...] ascending by key.

    Called for every map of every record written (members, deadlines, buckets...), most of them
    empty or of one entry: those skip the sort, and longer ones sort the keys alone (cheaper than
    sorting pairs) and interleave the values by slice assignment.
    """
    size = len(pairs)
    if size <= 1:
        for pair in pairs.items():
            return list(pair)
        return []
    keys = sorted(pairs)
    flat = keys * 2
    flat[::2] = keys
    flat[1::2] = map(pairs.__getitem__, keys)
    return flat


def _flat_get(flat: list[int], keys: list[int], wanted: int) -> int | None:
    """The value of `wanted` in a flat [k0, v0, k1, v1, ...] list whose keys are `keys` (`flat[::2]`).

    A recalculation asks every person about the new cohort, which most are not in: a miss is
    answered by `in`, since catching `index`'s ValueError cost four times as much."""
    if wanted not in keys:
        return None
    return flat[2 * keys.index(wanted) + 1]


def _unflatten(flat: list[int]) -> dict[int, int]:
    if len(flat) % 2:
        raise ValueError("odd flat list")
    if not flat:
        return {}
    pairs = iter(flat)
    return dict(zip(pairs, pairs))  # noqa: B905 - the length is even, checked above
