"""PersonStore over a real RocksDB partition (rocksdict, as faust opens it) and a stand-in table."""

from __future__ import annotations

from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from stream.state.codec import encode
from stream.state.record import SOURCE_CONTROL, OutboxFlip, PersonRecord
from stream.state.store import PENDING_MAX, PersonStore


class _Data:
    def __init__(self, dbs: dict[int, Rdict]) -> None:
        self._dbs = dbs

    def _db_for_partition(self, partition: int) -> Rdict:
        return self._dbs[partition]


class _Table:
    """What PersonStore uses of a faust Table: `.data`, the store that opens each partition's RocksDB."""

    def __init__(self, dbs: dict[int, Rdict]) -> None:
        self.data = _Data(dbs)


class _Changelog(list):
    def send(self, partition: int, key: bytes, value: bytes) -> None:
        self.append((partition, key, value))


@pytest.fixture
def table(tmp_path: Path):
    dbs = {p: Rdict(str(tmp_path / f"p{p}"), Options(raw_mode=True)) for p in (0, 1)}
    yield _Table(dbs)
    for db in dbs.values():
        db.close()


def test_put_then_get_round_trips_skips_identical_writes_and_sends_each_write_to_the_changelog(table):
    changelog = _Changelog()
    store = PersonStore(table, changelog.send)
    record = PersonRecord(known=True, properties={"a": 1})
    assert store.put(b"1:a", record, 1) is True
    raw, again = store.get(b"1:a", 1)
    assert again == record
    assert changelog == [(1, b"1:a", raw)]
    assert store.put(b"1:a", again, 1, raw) is False
    assert len(changelog) == 1
    assert store.get(b"1:a", 0) == (None, None)  # each partition is its own database
    assert store.get(b"1:missing", 1) == (None, None)


def test_writes_are_held_until_write_pending_yet_every_read_sees_them(table):
    changelog = _Changelog()
    store = PersonStore(table, changelog.send)
    db = table.data._db_for_partition(1)
    db[b"1:b"] = encode(PersonRecord(known=False))
    store.put(b"1:a", PersonRecord(known=True), 1)
    store.put(b"1:b", PersonRecord(known=True, properties={"v": 2}), 1)
    assert db.get(b"1:a") is None  # held, not written
    assert store.get(b"1:a", 1)[1] == PersonRecord(known=True)
    assert store.get(b"1:b", 1)[1] == PersonRecord(known=True, properties={"v": 2})  # held, not stored
    assert len(changelog) == 2  # the changelog is sent at once
    store.write_pending()
    assert db.get(b"1:a") == changelog[0][2] and db.get(b"1:b") == changelog[1][2]
    store.write_pending()  # nothing held: nothing to do
    assert store.get(b"1:a", 1)[0] == changelog[0][2]


def test_a_scan_writes_its_partitions_held_writes_first_and_does_not_see_keys_added_during_it(table):
    store = PersonStore(table, _Changelog().send)
    store.put(b"1:a", PersonRecord(known=True), 0)
    store.put(b"1:c", PersonRecord(known=True), 1)
    assert [k for k, _ in store.scan(0)] == [b"1:a"]
    assert table.data._db_for_partition(1).get(b"1:c") is None  # another partition's writes stay held
    seen = []
    for key, _ in store.scan(0):
        seen.append(key)
        store.put(b"1:b", PersonRecord(known=True), 0)
        store.write_pending()
    assert seen == [b"1:a"]
    assert [k for k, _ in store.scan(0)] == [b"1:a", b"1:b"]


@pytest.mark.parametrize("written_out", [False, True], ids=["held", "written"])
def test_a_record_written_during_a_scan_is_read_again_when_the_scan_reaches_it(table, written_out: bool):
    """The person fold runs between a recalculation's persons: folding the iterator's older copy of a
    record it changed, and writing that back, would lose the fold's input."""
    store = PersonStore(table, _Changelog().send)
    for key in (b"1:a", b"1:b", b"1:c"):
        store.put(key, PersonRecord(known=True, properties={"v": 1}), 0)
    newer = PersonRecord(known=True, properties={"v": 2})
    seen = {}
    for key, raw in store.scan(0):
        seen[key] = raw
        if key == b"1:a":
            store.put(b"1:b", newer, 0)  # ahead of the scan: it must see this
            store.put(b"1:a", newer, 0)  # behind it: seen by the next scan
            if written_out:
                store.write_pending()
    assert seen[b"1:b"] == encode(newer)
    assert seen[b"1:a"] == seen[b"1:c"] == encode(PersonRecord(known=True, properties={"v": 1}))
    assert dict(store.scan(0)) == {b"1:a": encode(newer), b"1:b": encode(newer), b"1:c": seen[b"1:c"]}


def test_nested_scans_of_a_partition_each_see_the_writes_made_since_they_began(table):
    store = PersonStore(table, _Changelog().send)
    for key in (b"1:a", b"1:b"):
        store.put(key, PersonRecord(known=True), 0)
    newer = encode(PersonRecord(known=True, properties={"v": 2}))
    outer = store.scan(0)
    assert next(outer)[0] == b"1:a"
    inner = dict(store.scan(0))  # a whole scan inside the outer one, then gone
    store.put(b"1:b", PersonRecord(known=True, properties={"v": 2}), 0)
    assert inner[b"1:b"] != newer
    assert next(outer) == (b"1:b", newer)
    assert list(outer) == []
    assert store._scans == {}  # nothing kept once every scan of the partition ended


def test_a_partition_holding_pending_max_writes_writes_them_as_one_batch(table):
    store = PersonStore(table, _Changelog().send)
    db = table.data._db_for_partition(0)
    for n in range(PENDING_MAX - 1):
        store.put(f"1:{n:05d}".encode(), PersonRecord(known=True), 0)
    assert db.get(b"1:00000") is None
    store.put(b"1:last", PersonRecord(known=True), 0)
    assert db.get(b"1:00000") is not None and db.get(b"1:last") is not None


def test_rewrite_sends_the_stored_bytes_to_the_changelog_without_touching_the_database(table):
    changelog = _Changelog()
    store = PersonStore(table, changelog.send)
    store.put(b"1:a", PersonRecord(known=True), 0)
    raw, _ = store.get(b"1:a", 0)
    store.rewrite(b"1:a", raw, 0)
    assert changelog == [(0, b"1:a", raw), (0, b"1:a", raw)]
    assert store.get(b"1:a", 0)[0] == raw


def test_scan_with_a_team_prefix_stops_at_the_next_team_and_skips_faust_bookkeeping(table):
    db = table.data._db_for_partition(0)
    for key in (b"1:a", b"1:b", b"12:c", b"2:d"):
        db[key] = encode(PersonRecord(known=True))
    db[b"__faust\0offset__"] = b"17"
    store = PersonStore(table, _Changelog().send)
    assert [k for k, _ in store.scan(0, b"1:")] == [b"1:a", b"1:b"]
    assert [k for k, _ in store.scan(0, b"12:")] == [b"12:c"]
    assert [k for k, _ in store.scan(0)] == [b"12:c", b"1:a", b"1:b", b"2:d"]
    assert list(store.scan(1)) == []


def test_the_index_is_rebuilt_once_and_kept_current_by_put(table):
    db = table.data._db_for_partition(0)
    db[b"1:a"] = encode(PersonRecord(next_deadline_us=100))
    db[b"1:b"] = encode(PersonRecord(next_deadline_us=None))
    store = PersonStore(table, _Changelog().send)
    assert store.index(0) is None
    index, pending = store.ensure_index(0, replay_from=0)
    assert len(index) == 1 and pending == []
    store.put(b"1:b", PersonRecord(next_deadline_us=50), 0)
    assert index.pop_due(100) == [b"1:b", b"1:a"]
    same, _ = store.ensure_index(0, replay_from=0)
    assert same is index
    store.forget_indexes()
    assert store.index(0) is None


def test_rebuild_returns_records_whose_control_flips_may_not_have_been_sent(table):
    """Scenario: a tick at control offset 40 flipped 1:a; consumption resumes at offset 40 after a
    crash, so 1:a's flip is returned for re-emission, while 1:b (flipped at 30, committed) is not."""
    db = table.data._db_for_partition(0)
    db[b"1:a"] = encode(PersonRecord(outbox=[OutboxFlip(5, False, 1, 9, (SOURCE_CONTROL, 0, 40))]))
    db[b"1:b"] = encode(PersonRecord(outbox=[OutboxFlip(5, False, 1, 9, (SOURCE_CONTROL, 0, 30))]))
    _, pending = PersonStore(table, _Changelog().send).ensure_index(0, replay_from=40)
    assert [key for key, _ in pending] == [b"1:a"]


def test_a_database_reopened_after_a_rebalance_is_the_one_used(table, tmp_path: Path) -> None:
    store = PersonStore(table, _Changelog().send)
    store.put(b"1:a", PersonRecord(), 0)
    store.write_pending()  # the pre-commit flush, which faust runs before it drops a revoked partition
    first = table.data._dbs.pop(0)  # faust closes a revoked partition's database ...
    first.close()
    table.data._dbs[0] = Rdict(str(tmp_path / "p0-again"), Options(raw_mode=True))  # ... and opens it again
    store.put(b"1:b", PersonRecord(), 0)
    assert store.get(b"1:a", 0) == (None, None) and store.get(b"1:b", 0)[0] is not None


def test_faust_keeps_the_open_databases_in_one_dict_it_never_replaces() -> None:
    """PersonStore reads faust's `_dbs` directly (faust-streaming 0.15.3): it must be bound once."""
    import inspect

    from faust.stores import rocksdb

    source = inspect.getsource(rocksdb.Store)
    assert source.count("self._dbs = ") == 1
    assert "return self._dbs[partition]" in inspect.getsource(rocksdb.Store._db_for_partition)
