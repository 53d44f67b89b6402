"""Person record codec: round-trips, golden bytes of format 2, format 1 still read, loud failures."""

from __future__ import annotations

import orjson
import pytest

from stream.state.codec import (
    FORMAT_VERSION,
    CodecError,
    decode,
    encode,
    peek_control_flip_offset,
    peek_deadline,
)
from stream.state.record import MatcherState, OutboxFlip, PersonRecord

GOLDEN_FULL = bytes.fromhex(
    "020060d71d1400000001030000000000000000401e18240a060009000000000000005b7b22706c616e223a2270726f227d"
    "2c7b2261626364223a5b313030303030302c7b22646179223a5b31393939392c312c32303030302c325d7d2c5b355d5d7d"
    "2c5b342c395d2c5b332c312c372c325d2c5b332c39303030303030303030302c372c38363430303030303030305d2c5b31"
    "2c302c34322c332c302c395d2c5b5b312c302c34322c313730303030303030303030303030302c372c312c322c332c312c"
    "315d2c5b332c302c392c313730303030303030303030303030312c372c302c325d5d5d"
)
GOLDEN_EMPTY = bytes.fromhex(
    "02000000000000008000ffffffffffffffff0000000000000000ffffffffffffffff5b7b7d2c7b7d2c5b5d2c5b5d2c5b5d2c5b5d2c5b5d5d"
)
#: Format 1, written before per-cohort deadlines: still decoded (design §5: a decoder per version on disk).
GOLDEN_FULL_V1 = bytes.fromhex(
    "010060d71d1400000001030000000000000000401e18240a060009000000000000005b7b22706c616e223a2270726f"
    "227d2c7b2261626364223a5b313030303030302c7b22646179223a5b31393939392c312c32303030302c325d7d2c5b"
    "355d5d7d2c5b342c395d2c5b5b372c325d5d2c5b5b312c302c34325d5d2c5b5b372c312c322c313730303030303030"
    "303030303030302c312c302c34325d2c5b372c302c322c313730303030303030303030303030312c332c302c395d5d"
    "5d"
)
GOLDEN_EMPTY_V1 = bytes.fromhex(
    "01000000000000008000ffffffffffffffff0000000000000000ffffffffffffffff5b7b7d2c7b7d2c5b5d2c5b5d2c5b5d2c5b5d5d"
)


def _full_record() -> PersonRecord:
    return PersonRecord(
        known=True,
        deleted=False,
        person_version=3,
        properties={"plan": "pro"},
        matchers={
            "abcd": MatcherState(first_seen_us=1_000_000, buckets={"day": {20000: 2, 19999: 1}}, timestamps_us=[5])
        },
        static={9, 4},
        members={7: 2, 3: 1},
        next_deadline_us=86_400_000_000,
        deadlines={7: 86_400_000_000, 3: 90_000_000_000},
        evaluated_at_us=1_700_000_000_000_000,
        applied={(1, 0): 42, (3, 0): 9},
        outbox=[
            OutboxFlip(7, True, 2, 1_700_000_000_000_000, (1, 0, 42)),
            OutboxFlip(3, True, 1, 1_700_000_000_000_000, (1, 0, 42)),
            OutboxFlip(7, False, 2, 1_700_000_000_000_001, (3, 0, 9)),
        ],
    )


def _full_record_v1() -> PersonRecord:
    """What GOLDEN_FULL_V1 holds: no per-cohort deadlines (None: evaluate in full when next touched),
    and no record of where live counting began (None: a backfill leaves the matcher alone)."""
    return PersonRecord(
        known=True,
        deleted=False,
        person_version=3,
        properties={"plan": "pro"},
        matchers={
            "abcd": MatcherState(
                first_seen_us=1_000_000, buckets={"day": {20000: 2, 19999: 1}}, timestamps_us=[5], live_from=None
            )
        },
        static={9, 4},
        members={7: 2},
        next_deadline_us=86_400_000_000,
        deadlines=None,
        evaluated_at_us=1_700_000_000_000_000,
        applied={(1, 0): 42},
        outbox=[
            OutboxFlip(7, True, 2, 1_700_000_000_000_000, (1, 0, 42)),
            OutboxFlip(7, False, 2, 1_700_000_000_000_001, (3, 0, 9)),
        ],
    )


def test_full_record_encodes_to_the_golden_bytes_of_format_2():
    """Scenario: the two flips caused by input (1, 0, 42) at one instant share an outbox group."""
    assert encode(_full_record()) == GOLDEN_FULL


def test_empty_record_encodes_to_the_golden_bytes_of_format_2():
    assert encode(PersonRecord()) == GOLDEN_EMPTY


def test_golden_bytes_decode_to_the_record_they_were_made_from():
    assert decode(GOLDEN_FULL) == _full_record()
    assert decode(GOLDEN_EMPTY) == PersonRecord()


def test_format_1_records_still_decode_without_per_cohort_deadlines():
    assert decode(GOLDEN_FULL_V1) == _full_record_v1()
    assert decode(GOLDEN_EMPTY_V1) == PersonRecord(deadlines=None)
    assert peek_deadline(GOLDEN_FULL_V1) == 86_400_000_000
    assert peek_control_flip_offset(GOLDEN_FULL_V1) == 9


def test_a_format_1_record_is_written_back_as_format_2():
    record = decode(GOLDEN_FULL_V1)
    record.deadlines = {7: 86_400_000_000}
    again = encode(record)
    assert again[0] == 2 and decode(again) == record


def test_decoded_outbox_flips_have_real_booleans():
    """Scenario: `entered` is stored as 0/1; decoded it must be a bool, not an int that equals one."""
    flips = decode(GOLDEN_FULL).outbox
    assert [type(f.entered) for f in flips] == [bool, bool, bool]
    assert [f.entered for f in flips] == [True, True, False]


def test_round_trip_keeps_every_field():
    record = _full_record()
    record.deleted = True
    record.next_deadline_us = None
    record.matchers["ffff"] = MatcherState(first_seen_us=None, buckets={"minute": {-5: 1}}, timestamps_us=[])
    record.properties = {"nested": {"a": [1, 2.5, None, True]}, "ü": "ß"}
    record.deadlines = {}
    assert decode(encode(record)) == record


def test_malformed_format_2_lists_fail_loudly():
    """Scenario: flat lists of the wrong length are corruption, not something to guess around."""
    body = b"[{},{},[],[1],[],[],[]]"
    with pytest.raises(CodecError, match="malformed"):
        decode(GOLDEN_EMPTY[:34] + body)
    with pytest.raises(CodecError, match="malformed"):
        decode(GOLDEN_EMPTY[:34] + b"[{},{},[],[],[],[1,0],[]]")
    with pytest.raises(CodecError, match="malformed"):
        decode(GOLDEN_EMPTY[:34] + b"[{},{},[],[],[],[],[[1,0,5,7,3]]]")


def test_the_version_byte_comes_first():
    assert encode(PersonRecord())[0] == FORMAT_VERSION == 2


def test_an_unknown_format_version_fails_loudly():
    with pytest.raises(CodecError, match="unknown person record format version 3"):
        decode(b"\x03" + GOLDEN_EMPTY[1:])
    with pytest.raises(CodecError, match="unknown person record format version"):
        peek_deadline(b"\x07" + GOLDEN_EMPTY[1:])


def test_truncated_and_empty_records_fail_loudly():
    with pytest.raises(CodecError):
        decode(b"")
    with pytest.raises(CodecError, match="truncated"):
        decode(GOLDEN_FULL[:10])
    with pytest.raises(CodecError, match="malformed"):
        decode(GOLDEN_FULL[:-3])


def test_peek_deadline_reads_the_header_only():
    assert peek_deadline(GOLDEN_FULL) == 86_400_000_000
    assert peek_deadline(GOLDEN_EMPTY) is None
    assert peek_deadline(GOLDEN_FULL[:9]) == 86_400_000_000


def test_negative_deadline_and_bucket_round_trip():
    """Scenario: instants before 1970 are negative; only INT64_MIN means 'no deadline'."""
    record = PersonRecord(next_deadline_us=-1, evaluated_at_us=-5)
    assert decode(encode(record)).next_deadline_us == -1
    assert decode(encode(record)).evaluated_at_us == -5


def test_header_carries_the_highest_control_offset_in_the_outbox():
    """Scenario: the rebuild after an assignment finds records with tick/recalculate flips to
    re-emit from the header alone; event-caused flips do not count."""
    assert peek_control_flip_offset(GOLDEN_FULL) == 9
    assert peek_control_flip_offset(GOLDEN_EMPTY) == -1
    only_events = PersonRecord(outbox=[OutboxFlip(1, True, 1, 5, (1, 0, 99))])
    assert peek_control_flip_offset(encode(only_events)) == -1


@pytest.mark.parametrize("size", [0, 1, 2, 5])
def test_maps_of_any_size_are_written_as_flat_lists_ascending_by_key(size: int):
    """Scenario: maps filled in descending key order, of the sizes the codec writes by different
    paths (none, one entry, several); the body holds them ascending, and reads back equal."""
    keys = list(range(size, 0, -1))
    state = MatcherState(
        first_seen_us=1,
        buckets={"day": {k: k + 10 for k in keys}, "minute": {-k: 1 for k in keys}},
        live_from={k: 100 + k for k in keys},
        backfilled={k: 50 for k in keys},
    )
    record = PersonRecord(
        known=True,
        matchers={"m": state},
        members={k: 1 for k in keys},
        deadlines={k: 10**15 + k for k in keys},
        applied={(k % 3, k): k for k in keys},
    )
    body = orjson.loads(encode(record)[34:])
    up = sorted(keys)
    day, minute = [n for k in up for n in (k, k + 10)], [n for k in sorted(-k for k in keys) for n in (k, 1)]
    coverage = [[n for k in up for n in (k, 100 + k)], [n for k in up for n in (k, 50)]] if size else []
    assert body[1] == {"m": [1, {"day": day, "minute": minute}, [], *coverage]}
    assert body[3] == [n for k in up for n in (k, 1)]
    assert body[4] == [n for k in up for n in (k, 10**15 + k)]
    assert body[5] == [n for s, p in sorted((k % 3, k) for k in keys) for n in (s, p, p)]
    assert decode(encode(record)) == record


def test_a_matcher_without_live_counting_keeps_its_null_and_empty_backfill():
    record = PersonRecord(known=True, matchers={"m": MatcherState(3, {"day": {7: 1}}, [], live_from=None)})
    body = orjson.loads(encode(record)[34:])
    assert body[1] == {"m": [3, {"day": [7, 1]}, [], None, []]}
    assert decode(encode(record)) == record
