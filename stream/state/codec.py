"""The person record's byte layout: one versioned format, version byte first (design §5).

Format 1 (all integers little-endian):

    offset  size  field
    0       1     format version = 1
    1       8     next_deadline_us, int64 (INT64_MIN = none)    <- the deadline scan reads only this
    9       1     flags: bit 0 known, bit 1 deleted
    10      8     person_version, int64 (-1 = no person record yet)
    18      8     evaluated_at_us, int64
    26      8     control_flip_offset, int64: highest control offset among outbox flips (-1 = none);
                  derived from the outbox, so the rebuild after an assignment finds records whose
                  tick/recalculate flips may need re-emission without decoding every body
    34      ...   orjson array [properties, matchers, static, members, applied, outbox]
                  matchers = {matcher_hash: [first_seen_us | null, {granularity: [b0, c0, b1, c1, ...]},
                              [timestamps_us ...]]}   (buckets ascending)
                  static   = [cohort_id ...] ascending
                  members  = [[cohort_id, version] ...] ascending
                  applied  = [[source, partition, offset] ...] ascending
                  outbox   = [[cohort_id, entered 0|1, version, at_us, source, partition, offset] ...]

An unknown version or a malformed body raises `CodecError`: a record this build cannot read must
stop the worker loudly rather than be silently rewritten. Changing the layout means a new version
number and a decoder for every version still on disk.
"""

from __future__ import annotations

import struct
from typing import Final

import orjson

from stream.state.record import SOURCE_CONTROL, MatcherState, OutboxFlip, PersonRecord

__all__ = ["FORMAT_VERSION", "CodecError", "decode", "encode", "peek_control_flip_offset", "peek_deadline"]

FORMAT_VERSION: Final[int] = 1

_HEADER: Final = struct.Struct("<BqBqqq")
_CONTROL_OFFSET: Final = struct.Struct("<q")
_CONTROL_OFFSET_AT: Final[int] = 26
_DEADLINE: Final = struct.Struct("<q")
_NO_DEADLINE: Final[int] = -(2**63)
_KNOWN: Final[int] = 1
_DELETED: Final[int] = 2


class CodecError(ValueError):
    """Bytes that are not a person record this build can read."""


def encode(record: PersonRecord) -> bytes:
    deadline = _NO_DEADLINE if record.next_deadline_us is None else record.next_deadline_us
    flags = (_KNOWN if record.known else 0) | (_DELETED if record.deleted else 0)
    control_offset = max((f.origin[2] for f in record.outbox if f.origin[0] == SOURCE_CONTROL), default=-1)
    header = _HEADER.pack(
        FORMAT_VERSION, deadline, flags, record.person_version, record.evaluated_at_us, control_offset
    )
    matchers = {
        matcher_hash: [
            state.first_seen_us,
            {gran: _flatten(buckets) for gran, buckets in state.buckets.items()},
            state.timestamps_us,
        ]
        for matcher_hash, state in record.matchers.items()
    }
    body = [
        record.properties,
        matchers,
        sorted(record.static),
        sorted([cohort_id, version] for cohort_id, version in record.members.items()),
        sorted([source, partition, offset] for (source, partition), offset in record.applied.items()),
        [
            [f.cohort_id, 1 if f.entered else 0, f.version, f.at_us, f.origin[0], f.origin[1], f.origin[2]]
            for f in record.outbox
        ],
    ]
    return header + orjson.dumps(body)


def decode(raw: bytes) -> PersonRecord:
    _check_version(raw)
    if len(raw) < _HEADER.size:
        raise CodecError(f"person record truncated: {len(raw)} bytes")
    _, deadline, flags, person_version, evaluated_at_us, _ = _HEADER.unpack_from(raw)
    try:
        properties, matchers, static, members, applied, outbox = orjson.loads(raw[_HEADER.size :])
        return PersonRecord(
            known=bool(flags & _KNOWN),
            deleted=bool(flags & _DELETED),
            person_version=person_version,
            properties=properties,
            matchers={
                matcher_hash: MatcherState(
                    first_seen_us=first_seen,
                    buckets={gran: _unflatten(flat) for gran, flat in buckets.items()},
                    timestamps_us=timestamps,
                )
                for matcher_hash, (first_seen, buckets, timestamps) in matchers.items()
            },
            static=set(static),
            members={cohort_id: version for cohort_id, version in members},
            next_deadline_us=None if deadline == _NO_DEADLINE else deadline,
            evaluated_at_us=evaluated_at_us,
            applied={(source, partition): offset for source, partition, offset in applied},
            outbox=[
                OutboxFlip(cohort_id, bool(entered), version, at_us, (source, partition, offset))
                for cohort_id, entered, version, at_us, source, partition, offset in outbox
            ],
        )
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"person record body malformed: {exc}") from exc


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


def _check_version(raw: bytes) -> None:
    if not raw:
        raise CodecError("empty person record")
    if raw[0] != FORMAT_VERSION:
        raise CodecError(f"unknown person record format version {raw[0]} (this build reads {FORMAT_VERSION})")


def _flatten(buckets: dict[int, int]) -> list[int]:
    flat: list[int] = []
    for bucket in sorted(buckets):
        flat.append(bucket)
        flat.append(buckets[bucket])
    return flat


def _unflatten(flat: list[int]) -> dict[int, int]:
    if len(flat) % 2:
        raise ValueError("odd bucket list")
    return dict(zip(flat[0::2], flat[1::2], strict=True))
