"""Catalog agents: every worker follows the whole catalog; one of them announces changes.

- `follow_catalog` (a task in every worker): a group-less aiokafka consumer assigned to the single
  catalog partition reads it from the beginning into the in-memory `Catalog`, sets `ready` once it
  has reached the end offset it saw at start-up, and keeps following. Agents wait for `ready`.
- `catalog-recalculate` (an agent in the consumer group, so exactly one worker owns the catalog
  partition): for each new cohort version or deletion it sends `recalculate(cohort, version)` to
  every control partition. Records superseded by a newer version already in the local catalog are
  skipped, so a fresh group does not recompute history.
"""

from __future__ import annotations

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from cohorts.wire import CatalogRecord, ControlMessage, WireError
from stream.catalog import parse_cohort_key
from stream.runtime import Runtime

__all__ = ["install"]


def install(app: faust.App, rt: Runtime) -> None:
    channels, outputs, metrics, catalog = rt.channels, rt.outputs, rt.metrics, rt.catalog

    @app.task
    async def follow_catalog() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=rt.settings.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            client_id=f"{rt.topics.prefix}cohorts-worker-catalog",
        )
        await consumer.start()
        try:
            tp = TopicPartition(rt.topics.catalog, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            if end == 0:
                catalog.ready.set()
            while True:
                batches = await consumer.getmany(tp, timeout_ms=500, max_records=1_000)
                for message in batches.get(tp, []):
                    catalog.apply(message.key, message.value, message.offset)
                    metrics.messages_in.labels(rt.topics.catalog).inc()
                if not catalog.ready.is_set() and await consumer.position(tp) >= end:
                    catalog.ready.set()
        finally:
            await consumer.stop()

    @app.agent(channels.catalog, name="catalog-recalculate")
    async def announce_changes(stream: faust.StreamT) -> None:
        await catalog.ready.wait()
        async for event in stream.events():
            cohort_id = parse_cohort_key(event.key)
            if cohort_id is None:
                continue
            current = catalog.cohort(cohort_id)
            if event.value is None:
                team_id, version = (current.team_id if current else None), None
            else:
                try:
                    record = CatalogRecord.from_bytes(event.value)
                except WireError:
                    continue
                if current is not None and current.version > record.version:
                    continue
                team_id, version = record.team_id, record.version
            if team_id is None:
                continue
            message = ControlMessage(type="recalculate", team_id=team_id, cohort_id=cohort_id, version=version)
            await outputs.to_every_control_partition(message)
