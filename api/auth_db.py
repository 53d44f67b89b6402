"""Projects, users and personal API keys: their own RocksDB at `data_dir/"auth"` (design §9).

RocksDB locks a database per process, and the CLI must work while an api runs on the same data
dir. So only the CLI (`api.admin`) opens this database read-write, briefly, and then replaces
the stamp file `data_dir/"auth.stamp"`; the api opens it read-only and re-opens it whenever
the stamp changed (one `stat` per lookup), so a key is usable as soon as the CLI returns.
Lookups (found or not) are cached until that re-open: between two stamps the database cannot
change under the api. Cached values are shared: callers must not change them.

Layout (raw keys, JSON values):
    meta:next_project_id, meta:next_user_id  -> int
    project:<id>                             -> {id, name, created_at}
    user:<id>                                -> {id, uuid, distinct_id, first_name, last_name, email,
                                                 is_email_verified, current_project_id, projects}
    user_email:<email lower-case>            -> user id
    key:<sha256 hex of the key>              -> {id, label, user_id, scopes, scoped_teams, created_at}

Keys are stored only as their SHA-256; the plain key is shown once, by the CLI.
Never: open this database read-write from the api process.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from rocksdict import AccessType, Options, Rdict

#: Most lookups kept between two re-opens (the cache is dropped whole beyond this).
_CACHE_LIMIT = 10_000

__all__ = ["AuthDirectory", "auth_path", "hash_key", "open_for_write", "stamp_path", "touch_stamp"]


def auth_path(data_dir: Path) -> Path:
    return Path(data_dir) / "auth"


def stamp_path(data_dir: Path) -> Path:
    return Path(data_dir) / "auth.stamp"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def touch_stamp(data_dir: Path) -> None:
    """Replace the stamp file so readers see a new inode and re-open the database."""
    target = stamp_path(data_dir)
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}")
    tmp.write_text(uuid.uuid4().hex)
    os.replace(tmp, target)


def open_for_write(data_dir: Path, *, timeout_s: float = 15.0) -> Rdict:
    """Open the auth database read-write, waiting while another CLI holds its lock."""
    path = auth_path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        try:
            return Rdict(str(path), options=options)
        except Exception as exc:  # rocksdict raises a bare Exception for a held lock
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class AuthDirectory:
    """The api's read-only view of the auth database, re-opened when the CLI changed it."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = Path(data_dir)
        self._stamp_file = str(stamp_path(self._data_dir))
        self._lock = threading.Lock()
        self._db: Rdict | None = None
        self._stamp: tuple[int, int] | None = None
        self._cache: dict[bytes, Any] = {}
        if not auth_path(self._data_dir).joinpath("CURRENT").exists():
            db = open_for_write(self._data_dir)
            db.close()
            del db
        self._reopen()

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._stamp_file)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def _reopen(self) -> None:
        stamp = self._current_stamp()
        self._cache.clear()
        if self._db is not None:
            self._db.close()
            self._db = None
        self._db = Rdict(
            str(auth_path(self._data_dir)),
            options=Options(raw_mode=True),
            access_type=AccessType.read_only(),
        )
        self._stamp = stamp

    def _get(self, key: bytes) -> Any:
        with self._lock:
            for attempt in range(5):
                try:
                    if self._db is None or self._current_stamp() != self._stamp:
                        self._reopen()
                    elif key in self._cache:
                        return self._cache[key]
                    assert self._db is not None
                    raw = self._db.get(key)
                    break
                except Exception:  # the CLI compacted files under an old handle: reopen and retry
                    if attempt == 4:
                        raise
                    if self._db is not None:
                        self._db.close()
                        self._db = None
                    time.sleep(0.02 * (attempt + 1))
            value = None if raw is None else orjson.loads(raw)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = value
            return value

    def stamp(self) -> tuple[int, int] | None:
        """The CLI's stamp as it is now: it changes after every write to the auth database, so a
        cache of anything read from it (a cohort's `created_by`) is valid while it is unchanged."""
        return self._current_stamp()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def key(self, raw_key: str) -> dict[str, Any] | None:
        return self._get(b"key:" + hash_key(raw_key).encode())

    def project(self, project_id: int) -> dict[str, Any] | None:
        return self._get(f"project:{project_id}".encode())

    def user(self, user_id: int) -> dict[str, Any] | None:
        return self._get(f"user:{user_id}".encode())
