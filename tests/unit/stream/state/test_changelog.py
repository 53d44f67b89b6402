"""Changelog: sends through the fast producer, notes acknowledged offsets only in open partitions."""

from __future__ import annotations

from faust.types import TP

from stream.state.changelog import Changelog


class _Fast:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.offsets: dict[str, dict[int, int]] = {}

    def track_offsets(self, topic: str) -> dict[int, int]:
        return self.offsets.setdefault(topic, {})

    def send(self, topic: str, key: bytes, value: bytes, partition: int = -1) -> None:
        self.sent.append((topic, key, value, partition))


class _Store:
    def __init__(self, open_partitions: set[int]) -> None:
        self._dbs = {p: object() for p in open_partitions}
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


def test_send_names_the_partition_and_persist_notes_only_open_partitions_once():
    fast, store = _Fast(), _Store({0, 2})
    changelog = Changelog(fast, "w-persons-changelog", lambda: store)
    changelog.send(2, b"1:a", b"rec")
    assert fast.sent == [("w-persons-changelog", b"1:a", b"rec", 2)]
    fast.offsets["w-persons-changelog"].update({0: 41, 1: 7, 2: 9})  # delivery reports arrived
    changelog.persist()
    assert store.persisted == {TP("w-persons-changelog", 0): 41, TP("w-persons-changelog", 2): 9}
    store.persisted.clear()
    changelog.persist()  # nothing new acknowledged: nothing rewritten
    assert store.persisted == {}
