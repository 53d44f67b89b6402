"""How many bytes the person table's RocksDB databases hold on disk, per partition (design §8).

faust keeps one RocksDB database per table partition, a directory named `<table>-<partition>.db`
under the app's table directory. Sizing a worker (docs/operating.md) needs their size, so the
worker reports it; reading a directory listing is cheap enough for a periodic timer.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["partition_bytes"]


def partition_bytes(tabledir: Path, table: str) -> dict[int, int]:
    """{partition: bytes of every file under `<table>-<partition>.db`}; {} when nothing exists yet."""
    pattern = re.compile(rf"{re.escape(table)}-(\d+)\.db")
    found: dict[int, int] = {}
    if not tabledir.is_dir():
        return found
    for database in tabledir.iterdir():
        matched = pattern.fullmatch(database.name)
        if matched is None or not database.is_dir():
            continue
        total = 0
        for path in database.rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except FileNotFoundError:  # compaction removed it between listing and stat
                continue
        found[int(matched.group(1))] = total
    return found
