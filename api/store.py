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

Never: open the auth database (that is `api.auth_db`), or a worker's RocksDB.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from rocksdict import Options, Rdict, WriteBatch

__all__ = ["Batch", "Store", "key"]

_TOMBSTONE = object()


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
        self._db = Rdict(str(path), options=options)
        self._write_lock = threading.Lock()
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
        if not keys:
            return []
        return [None if raw is None else orjson.loads(raw) for raw in self._db.get(keys)]

    def scan(self, prefix: bytes, *, reverse: bool = False, limit: int | None = None) -> list[tuple[bytes, Any]]:
        """Rows whose key starts with `prefix`, in key order (or reverse), JSON-decoded."""
        return [(k, orjson.loads(v)) for k, v in self.scan_raw(prefix, reverse=reverse, limit=limit)]

    def scan_raw(self, prefix: bytes, *, reverse: bool = False, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        return list(self._iterate(prefix, reverse=reverse, limit=limit))

    def count(self, prefix: bytes) -> int:
        return sum(1 for _ in self._iterate(prefix, reverse=False, limit=None, values=False))

    def _iterate(
        self, prefix: bytes, *, reverse: bool, limit: int | None, values: bool = True
    ) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
        try:
            if reverse:
                it.seek_for_prev(prefix + b"\xff")
            else:
                it.seek(prefix)
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

    # Writes --------------------------------------------------------------------------------
    def batch(self) -> Batch:
        return Batch(self)

    def put(self, k: bytes, value: Any) -> None:
        with self._write_lock:
            self._db.put(k, orjson.dumps(value))

    def _write(self, wb: WriteBatch) -> None:
        with self._write_lock:
            self._db.write(wb)


class Batch:
    """Writes applied atomically on `commit()`; `get` sees this batch's own pending writes."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[bytes, Any] = {}

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
        self._store._write(wb)
        self._pending.clear()
