"""Deadline index: due keys come out earliest first; re-setting and clearing supersede old entries."""

from __future__ import annotations

from stream.state.codec import encode
from stream.state.deadlines import DeadlineIndex
from stream.state.record import PersonRecord


def test_pop_due_returns_keys_at_or_before_now_earliest_first():
    index = DeadlineIndex()
    index.set(b"1:b", 200)
    index.set(b"1:a", 100)
    index.set(b"1:c", 300)
    assert index.pop_due(200) == [b"1:a", b"1:b"]
    assert len(index) == 1
    assert index.pop_due(299) == []
    assert index.pop_due(300) == [b"1:c"]


def test_a_deadline_exactly_at_now_is_due():
    index = DeadlineIndex()
    index.set(b"k", 1_000)
    assert index.pop_due(999) == []
    assert index.pop_due(1_000) == [b"k"]


def test_resetting_a_key_supersedes_its_old_deadline():
    index = DeadlineIndex()
    index.set(b"k", 100)
    index.set(b"k", 500)
    assert index.pop_due(400) == []
    assert index.deadline_of(b"k") == 500
    assert index.pop_due(500) == [b"k"]


def test_clearing_a_key_removes_it():
    index = DeadlineIndex()
    index.set(b"k", 100)
    index.set(b"k", None)
    assert index.pop_due(10**18) == []
    assert len(index) == 0
    assert index.next_deadline_us() is None


def test_pop_due_honours_the_limit_and_keeps_the_rest():
    index = DeadlineIndex()
    for n in range(10):
        index.set(f"k{n}".encode(), n)
    assert len(index.pop_due(100, limit=4)) == 4
    assert index.count_due(100) == 6
    assert len(index.pop_due(100)) == 6


def test_many_updates_compact_the_heap_without_losing_keys():
    index = DeadlineIndex()
    for round_ in range(5):
        for n in range(1_000):
            index.set(f"k{n}".encode(), 10_000 * round_ + n)
    assert len(index) == 1_000
    assert index.next_deadline_us() == 40_000
    assert len(index.pop_due(10**9)) == 1_000


def test_rebuild_reads_deadlines_from_record_headers():
    records = [
        (b"1:a", encode(PersonRecord(next_deadline_us=50))),
        (b"1:b", encode(PersonRecord(next_deadline_us=None))),
        (b"1:c", encode(PersonRecord(next_deadline_us=10))),
    ]
    index = DeadlineIndex.rebuild(records)
    assert len(index) == 2
    assert index.pop_due(100) == [b"1:c", b"1:a"]
