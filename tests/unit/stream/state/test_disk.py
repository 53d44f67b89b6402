"""RocksDB bytes per partition, read from faust's table directory layout."""

from __future__ import annotations

from pathlib import Path

from stream.state.disk import partition_bytes


def test_sums_every_file_of_each_partition_database_and_ignores_the_rest(tmp_path: Path):
    (tmp_path / "persons-0.db").mkdir()
    (tmp_path / "persons-0.db" / "000012.sst").write_bytes(b"x" * 1000)
    (tmp_path / "persons-0.db" / "LOG").write_bytes(b"x" * 24)
    (tmp_path / "persons-11.db" / "sub").mkdir(parents=True)
    (tmp_path / "persons-11.db" / "sub" / "a").write_bytes(b"x" * 7)
    (tmp_path / "persons-2.db").mkdir()
    (tmp_path / "other-3.db").mkdir()
    (tmp_path / "other-3.db" / "f").write_bytes(b"x" * 5)
    (tmp_path / "persons-4.db.tmp").mkdir()
    (tmp_path / "persons-5.db").write_bytes(b"not a directory")
    assert partition_bytes(tmp_path, "persons") == {0: 1024, 11: 7, 2: 0}


def test_no_table_directory_yet_means_no_partitions(tmp_path: Path):
    assert partition_bytes(tmp_path / "missing", "persons") == {}
