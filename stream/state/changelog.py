"""The person table's changelog, written through librdkafka instead of faust's producer.

faust sends one changelog message per table write through its aiokafka producer (about 20 µs of
CPU per message plus its buffer and callbacks, `bench.produce_micro`) and notes each acknowledged
offset in the partition's RocksDB, so that recovery reads only what came after it. Here the same
messages (same topic, key, value and partition, so faust's recovery reads them unchanged) go
through the worker's `FastProducer`; the offsets Kafka acknowledged are noted once per commit
(`persist`), not once per message.

Ordering and durability are the fast producer's: one idempotent producer keeps a partition's
messages in order, and faust flushes it before committing input offsets. A crash before `persist`
leaves an older noted offset, so recovery re-reads a few changelog messages it already holds:
harmless, each one is the latest value of its key at that offset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faust.types import TP

from stream.fast_producer import FastProducer

__all__ = ["Changelog"]


class Changelog:
    def __init__(self, fast: FastProducer, topic: str, store_of: Callable[[], Any]) -> None:
        """`store_of` returns the table's faust store (`table.data`); faust builds it late."""
        self._fast = fast
        self._topic = topic
        self._store_of = store_of
        self._acknowledged = fast.track_offsets(topic)

    def send(self, partition: int, key: bytes, value: bytes) -> None:
        self._fast.send(self._topic, key, value, partition)

    def persist(self) -> None:
        """Note in each open partition database the highest changelog offset Kafka acknowledged."""
        store = self._store_of()
        open_partitions = store._dbs
        for partition, offset in list(self._acknowledged.items()):
            if partition in open_partitions:  # a partition moved away keeps what it had noted
                store.set_persisted_offset(TP(self._topic, partition), offset)
        self._acknowledged.clear()
