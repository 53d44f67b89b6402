"""The api's own RocksDB (`data_dir/"api"`): one read-write handle per process.

Owns the byte layout of every key the api writes (cohort rows, activity, static members, the
materialised views and the consumers' offsets). Keys are ASCII with `:`-separated, zero-padded
parts so a prefix scan returns rows in id/time order. Values are JSON (orjson).

Invariants:
- A consumer folds a batch of records and stores the next offsets in the *same* `Batch`, so a
  restart re-reads nothing twice and loses nothing (api-side exactly-once into the views).
- Readers of a batch see its own pending writes (`Batch.get`), so two records for one key in one
  batch fold correctly.
- Iterators are always released before returning: a live RocksDB iterator keeps the database
  locked after `close()`, and a restart in the same process would fail.
- A watched prefix's generation (`watch`, `generation`) moves after every write that touched a
  key under it, never before the write is visible: a reader that notes the generation, then
  reads, and caches what it read under that generation never keeps a stale cache past a write.

Never: open the auth database (that is `api.auth_db`), or a worker's RocksDB.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from rocksdict import Cache, Options, Rdict, WriteBatch

__all__ = ["Batch", "Store", "key"]

_TOMBSTONE = object()

#: RocksDB's row cache: a point read (`get`, `get_many`) of a recently read key is answered
#: without searching the files and decoding a block. A persons page reads 100 person records
#: (benchmark 5 data: 0.71 against 0.27 ms for 100 random persons of 200,000 once cached). Scans
#: do not use it. A write replaces the cached row, so a read never sees an older value.
ROW_CACHE_BYTES = 128 << 20


def key(*parts: object) -> bytes:
    """`key("cohort", 1, 42)` -> b"cohort:000000000001:00000000000000000042"-style bytes.

    Ints are zero-padded to 20 digits (u64 range) so lexical order is numeric order; strings
    have `%` and `:` percent-escaped so a part never spills into the next one (person "a" and
    person "a:b" have disjoint prefixes). Readers take ids from values, never parse keys.
    """
    return ":".join([_part(part) for part in parts]).encode()


def _part(part: object) -> str:
    # Exact-type checks first: this runs for every key of every read (persons pages build
    # thousands), and `isinstance` chains were most of its cost.
    kind = type(part)
    if kind is str:
        text: str = part  # type: ignore[assignment]
        return text if "%" not in text and ":" not in text else text.replace("%", "%25").replace(":", "%3A")
    if kind is bool:
        raise TypeError("bool is not a key part")
    if isinstance(part, int):
        if part < 0:
            raise ValueError("negative key part")
        return f"{part:020d}"
    return str(part).replace("%", "%25").replace(":", "%3A")


class Store:
    """A thin handle over one RocksDB in raw mode: bytes keys, JSON values."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_row_cache(Cache(ROW_CACHE_BYTES))
        self._db = Rdict(str(path), options=options)
        self._write_lock = threading.Lock()
        self._generations: dict[bytes, int] = {}
        self.path = path

    def close(self) -> None:
        self._db.close()

    # Reads ---------------------------------------------------------------------------------
    def get_raw(self, k: bytes) -> bytes | None:
        return self._db.get(k)

    def get(self, k: bytes) -> Any:
        raw = self._db.get(k)
        return None if raw is None else orjson.loads(raw)

    def get_many(self, keys: list[bytes]) -> list[Any]:
        """`get` of each key, in order, in one RocksDB multi-get."""
        return [None if raw is None else orjson.loads(raw) for raw in self.get_many_raw(keys)]

    def get_many_raw(self, keys: list[bytes]) -> list[bytes | None]:
        return self._db.get(keys) if keys else []

    def scan(
        self, prefix: bytes, *, reverse: bool = False, limit: int | None = None, skip: int = 0
    ) -> list[tuple[bytes, Any]]:
        """Rows whose key starts with `prefix`, in key order (or reverse), JSON-decoded; the first
        `skip` rows are stepped over without being read (an offset into an index)."""
        return [(k, orjson.loads(v)) for k, v in self.scan_raw(prefix, reverse=reverse, limit=limit, skip=skip)]

    def scan_raw(
        self, prefix: bytes, *, reverse: bool = False, limit: int | None = None, skip: int = 0
    ) -> list[tuple[bytes, bytes]]:
        return list(self._iterate(prefix, reverse=reverse, limit=limit, skip=skip))

    def each(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """`scan_raw` one row at a time, for a pass over more rows than fit in memory at once (the
        iterator is released when the loop ends or is left)."""
        return self._iterate(prefix, reverse=False, limit=None)

    def sequence(self) -> int:
        """RocksDB's latest sequence number: it moves with every write, so two reads made while it
        did not move read one state of the store."""
        return self._db.latest_sequence_number()

    def count(self, prefix: bytes) -> int:
        return sum(1 for _ in self._iterate(prefix, reverse=False, limit=None, values=False))

    def _iterate(
        self, prefix: bytes, *, reverse: bool, limit: int | None, values: bool = True, skip: int = 0
    ) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
        try:
            if reverse:
                it.seek_for_prev(prefix + b"\xff")
            else:
                it.seek(prefix)
            # The rows under a prefix are contiguous: stepping `skip` times and then finding a key
            # outside the prefix means there were fewer rows than that.
            step = it.prev if reverse else it.next
            for _ in range(skip):
                if not it.valid():
                    break
                step()
            taken = 0
            while it.valid():
                k = it.key()
                if not k.startswith(prefix):
                    break
                yield k, (it.value() if values else b"")
                taken += 1
                if limit is not None and taken >= limit:
                    break
                if reverse:
                    it.prev()
                else:
                    it.next()
        finally:
            del it

    # Generations (for in-memory caches over the store) ---------------------------------------
    def watch(self, prefix: bytes) -> None:
        """Count writes under `prefix` from now on (see `generation`)."""
        with self._write_lock:
            self._generations.setdefault(prefix, 0)

    def generation(self, prefix: bytes) -> int:
        """How many writes touched a key under the watched `prefix` so far in this process."""
        return self._generations[prefix]

    def _touched(self, keys: Iterable[bytes]) -> None:
        if not self._generations:
            return
        keys = list(keys)
        for prefix in self._generations:
            if any(k.startswith(prefix) for k in keys):
                self._generations[prefix] += 1

    # Writes --------------------------------------------------------------------------------
    def batch(self) -> Batch:
        return Batch(self)

    def put(self, k: bytes, value: Any) -> None:
        with self._write_lock:
            self._db.put(k, orjson.dumps(value))
            self._touched((k,))

    def _write(self, wb: WriteBatch, keys: Iterable[bytes]) -> None:
        with self._write_lock:
            self._db.write(wb)
            self._touched(keys)


class Batch:
    """Writes applied atomically on `commit()`; `get` sees this batch's own pending writes."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[bytes, Any] = {}

    @property
    def store(self) -> Store:
        """The store this batch commits to (its reads do not see this batch's writes)."""
        return self._store

    def get(self, k: bytes) -> Any:
        if k in self._pending:
            value = self._pending[k]
            return None if value is _TOMBSTONE else value
        return self._store.get(k)

    def put(self, k: bytes, value: Any) -> None:
        self._pending[k] = value

    def delete(self, k: bytes) -> None:
        self._pending[k] = _TOMBSTONE

    def __len__(self) -> int:
        return len(self._pending)

    def commit(self) -> None:
        if not self._pending:
            return
        wb = WriteBatch(raw_mode=True)
        for k, value in self._pending.items():
            if value is _TOMBSTONE:
                wb.delete(k)
            else:
                wb.put(k, orjson.dumps(value))
        self._store._write(wb, self._pending.keys())
        self._pending.clear()
