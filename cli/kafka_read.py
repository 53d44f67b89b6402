"""Reading Kafka the way the CLI's inspecting commands need: offsets and bounded ranges, no group.

`status` and `backfill` read [start, end) ranges of partitions by assignment. They never join a
consumer group and never commit, so they are safe to run against a production cluster: the
worker group's offsets are only ever read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from cohorts.settings import Settings

__all__ = ["Range", "list_offsets", "read_ranges", "settled"]

#: [start, end) offsets of one partition.
Range = tuple[int, int]

#: Errors Kafka answers with while partition leaders or a group coordinator are still being settled.
_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.NOT_COORDINATOR,
    }
)
_T = TypeVar("_T")


def settled(fetch: Callable[[], _T], timeout_s: float) -> _T:
    """`fetch()`, retried while leaders or the group coordinator settle (fresh topics and clusters)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fetch()
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in _SETTLING) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def list_offsets(
    admin: AdminClient, tps: list[TopicPartition], spec: OffsetSpec, timeout_s: float
) -> dict[tuple[str, int], int]:
    """{(topic, partition): offset} for `spec` (earliest, latest, or the first at a timestamp; -1: none)."""
    if not tps:
        return {}

    def fetch() -> dict[tuple[str, int], int]:
        futures = admin.list_offsets({tp: spec for tp in tps}, request_timeout=timeout_s)
        return {(tp.topic, tp.partition): f.result(timeout=timeout_s).offset for tp, f in futures.items()}

    return settled(fetch, timeout_s)


def read_ranges(
    settings: Settings, ranges: dict[tuple[str, int], Range], timeout_s: float | None, *, name: str = "status"
) -> Iterator[Any]:
    """Messages of each [start, end) range, by assignment (no group join, no commit).

    `timeout_s` bounds the whole read (None: no bound; a large backfill takes as long as it takes).
    """
    if not ranges:
        return
    logger = logging.getLogger(f"cohorts.{name}.librdkafka")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"cohorts-{name}-{uuid.uuid4().hex[:8]}",  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "logger": logger,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, start) for (topic, p), (start, _) in ranges.items()])
        pending = {tp: end for tp, (start, end) in ranges.items() if start < end}
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while pending:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{name}: reading {', '.join(sorted({t for t, _ in pending}))} took over {timeout_s}s"
                )
            batch = consumer.consume(num_messages=500, timeout=0.2)
            if not batch:
                # Compaction and control records leave offset gaps: trust the position, not the last offset seen.
                positions = consumer.position([TopicPartition(t, p) for t, p in pending])
                for tp in positions:
                    if tp.offset >= pending[(tp.topic, tp.partition)]:
                        del pending[(tp.topic, tp.partition)]
            for message in batch:
                if message.error():
                    continue
                tp = (message.topic(), message.partition())
                if tp not in pending or message.offset() >= pending[tp]:
                    continue
                yield message
                if message.offset() + 1 >= pending[tp]:
                    del pending[tp]
    finally:
        consumer.close()
