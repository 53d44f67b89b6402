"""The person table as the agents see it: get/put records, scan a partition, keep deadline indexes.

Backed by a faust Table on RocksDB (`rocksdb://`, raw bytes keys `team:person`, values from
`stream.state.codec`). faust opens, recovers and hands over each partition's database; reads and
writes here go straight to the database of the partition named by the caller, which must be the
partition of the message being processed (design §5), and every write is sent to the table's
changelog (`stream.state.changelog`). That skips faust's per-key layers (the current-event lookup,
an in-memory key index that grows with every person, one aiokafka message per write).

Writes are held in memory and written to RocksDB in one `WriteBatch` per partition: before a
scan of the partition, when a partition holds `PENDING_MAX` of them, and by `write_pending`. The
worker's pre-commit flush calls it right before it notes the changelog offsets Kafka acknowledged,
so a noted offset never covers a write the database lacks, and every commit and every hand-over
of a revoked partition's database comes after it. Why: rocksdict releases the GIL in every `put`,
and taking it back from a busy thread (faust's consumer thread, in the worker) made a 6 µs write
cost tens of µs (docs/design-engine.md, "Writes in batches"); a batch releases it once. `get`
reads the held writes first, so no reader sees the difference.

Deadline indexes are derived state: one per partition, built from a scan the first time the
partition is used after an assignment (`ensure_index`) and kept current by `put`. A rebalance drops
them all (`forget_indexes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from rocksdict import WriteBatch

from stream.state.codec import RecordSketch, decode, encode, peek_control_flip_offset, peek_deadline
from stream.state.deadlines import DeadlineIndex
from stream.state.record import PersonRecord

__all__ = ["PENDING_MAX", "PersonStore"]

#: Writes one partition may hold before they are written as one batch.
PENDING_MAX: Final = 1_000

#: faust's own bookkeeping key inside each partition's RocksDB (`Store.offset_key`).
_FAUST_OFFSET_KEY: Final = b"__faust\0offset__"


#: Sends one changelog record: (partition, key, value).
ChangelogSend = Callable[[int, bytes, bytes], None]


class PersonStore:
    def __init__(self, table: Any, changelog: ChangelogSend) -> None:
        """`table` is the faust Table (its `.data` store opens each partition's RocksDB)."""
        self._table = table
        self._changelog = changelog
        self._indexes: dict[int, DeadlineIndex] = {}
        self._open: dict[int, Any] = {}
        #: partition -> key -> encoded record, not written to the partition's database yet.
        self._pending: dict[int, dict[bytes, bytes]] = {}
        #: partition -> for each scan of it under way, the keys written since that scan began.
        self._scans: dict[int, list[set[bytes]]] = {}

    def _db(self, partition: int) -> Any:
        """The partition's database. faust keeps the open ones in one dict (`_dbs`, emptied and
        refilled by rebalances, never replaced) that is read here directly: going through the
        table's `data` property and `_db_for_partition` cost 3% of the fold."""
        try:
            return self._open[partition]
        except KeyError:
            store = self._table.data
            self._open = store._dbs
            return store._db_for_partition(partition)

    # --- records ----------------------------------------------------------------------------

    def get(self, key: bytes, partition: int) -> tuple[bytes | None, PersonRecord | None]:
        raw = self._current(key, partition)
        return raw, (None if raw is None else decode(raw))

    def _current(self, key: bytes, partition: int) -> bytes | None:
        """The record's bytes: a held write first, else the database's."""
        pending = self._pending.get(partition)
        raw = pending.get(key) if pending else None
        return self._db(partition).get(key) if raw is None else raw

    def put(
        self, key: bytes, record: PersonRecord | RecordSketch, partition: int, previous: bytes | None = None
    ) -> bool:
        """Write `record` (or a settled sketch of it) unless its bytes equal `previous`; returns whether it wrote.

        The deadline index is updated either way: a tick pops due keys before re-evaluating them.
        """
        index = self._indexes.get(partition)
        if index is not None:
            index.set(key, record.next_deadline_us)
        raw = encode(record)
        if raw == previous:
            return False
        pending = self._pending.setdefault(partition, {})
        pending[key] = raw
        for written in self._scans.get(partition, ()):
            written.add(key)
        self._changelog(partition, key, raw)
        if len(pending) >= PENDING_MAX:
            self._write(partition)
        return True

    def write_pending(self) -> None:
        """Write every held write to its partition's database (module docstring)."""
        for partition in list(self._pending):
            self._write(partition)

    def _write(self, partition: int) -> None:
        pending = self._pending.pop(partition, None)
        if not pending:
            return
        batch = WriteBatch(raw_mode=True)
        for key, raw in pending.items():
            batch.put(key, raw)
        self._db(partition).write(batch)

    def rewrite(self, key: bytes, raw: bytes, partition: int) -> None:
        """Send the stored bytes to the changelog again: after a crash, the input being replayed may
        have been written here while its changelog message was never sent (design §5)."""
        self._changelog(partition, key, raw)

    def scan(self, partition: int, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, record bytes) of one partition in key order, optionally under a key prefix.

        The keys are those of the partition when the scan began (a RocksDB iterator's view). A record
        written since then (the person fold runs between a recalculation's persons) is read again
        when the scan reaches it: a caller that folds what a scan yields and writes it back must
        never write over a newer record with one built on its older copy.
        """
        self._write(partition)
        db = self._db(partition)
        written: set[bytes] = set()
        scans = self._scans.setdefault(partition, [])
        scans.append(written)
        try:
            items = db.items(from_key=prefix) if prefix else db.items()
            for key, raw in items:
                if prefix and not key.startswith(prefix):
                    return
                if key == _FAUST_OFFSET_KEY:
                    continue
                if written and key in written:
                    current = self._current(key, partition)
                    if current is None:
                        continue
                    raw = current
                yield key, raw
        finally:
            scans[:] = [other for other in scans if other is not written]
            if not scans:
                del self._scans[partition]

    # --- deadline indexes -------------------------------------------------------------------

    def index(self, partition: int) -> DeadlineIndex | None:
        return self._indexes.get(partition)

    def ensure_index(self, partition: int, replay_from: int) -> tuple[DeadlineIndex, list[tuple[bytes, PersonRecord]]]:
        """The partition's deadline index, rebuilt from its records if this is its first use.

        A rebuild happens at the first control message after an assignment, whose offset
        `replay_from` is where consumption resumed: flips that control messages at or after it caused
        may have been lost in a crash, so the records holding such flips in their outbox are returned
        for re-emission (design §5). Only headers are read, except for those records.
        """
        index = self._indexes.get(partition)
        if index is not None:
            return index, []
        index = DeadlineIndex()
        pending: list[tuple[bytes, PersonRecord]] = []
        for key, raw in self.scan(partition):
            index.set(key, peek_deadline(raw))
            if peek_control_flip_offset(raw) >= replay_from:
                pending.append((key, decode(raw)))
        self._indexes[partition] = index
        return index, pending

    def forget_indexes(self) -> None:
        self._indexes.clear()

    def indexes(self) -> dict[int, DeadlineIndex]:
        return dict(self._indexes)
