"""Baseline 2, a straightforward stateful faust app: one RocksDB counter write per event.

The agent decodes each event with orjson, reads `person_id` and increments `counts[person_id]`
in a faust Table on `rocksdb://` (small explicit options, `baseline_app.ROCKSDB_OPTIONS`); each
write goes to RocksDB and to the table's changelog topic, as any faust table does.

The events are keyed by uuid (as PostHog keys them), and a faust table write lands in the
partition of the event being processed, so the table is a sharded counter: a person's total is
the sum over partitions. The sanity check at the end sums every entry, which must equal the number
of events. It runs after the clock stops, as does the wait for the changelog to be flushed (reported
separately as `flush_s`).
"""

from __future__ import annotations

import time

import faust
import orjson

from bench.baseline_app import ROCKSDB_OPTIONS, Probe, baseline_main, events_topic
from bench.common import Dataset

__all__ = ["install"]


def install(app: faust.App, dataset: Dataset, probe: Probe) -> None:
    """The counter table and the agent that increments it once per event."""
    counts = app.Table(
        "counts",
        default=int,
        key_type=str,
        value_type=int,
        partitions=dataset.partitions,
        options=dict(ROCKSDB_OPTIONS),
    )

    @app.agent(events_topic(app, dataset), name="counter")
    async def counter(stream: faust.StreamT) -> None:
        seen = 0
        async for value in stream:
            counts[orjson.loads(value)["person_id"]] += 1
            seen += 1
            if seen == 1:
                probe.first()
            if seen == probe.target:
                probe.last()
                flush_started = time.perf_counter()
                await app.producer.flush()
                flush_s = time.perf_counter() - flush_started
                total = sum(counts.values())
                probe.finish(flush_s=round(flush_s, 3), table_total=total, table_keys=len(counts))


if __name__ == "__main__":
    baseline_main("counter", install, value_serializer="json")
