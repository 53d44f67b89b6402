"""Catalog agents: every worker follows the whole catalog; one of them announces changes.

- `follow_catalog` (a task in every worker): a group-less aiokafka consumer assigned to the single
  catalog partition reads it from the beginning into the in-memory `Catalog`, sets `ready` once it
  has reached the end offset it saw at start-up, and keeps following. Agents wait for `ready`.
- `catalog-recalculate` (an agent in the consumer group, so exactly one worker owns the catalog
  partition): for each new cohort version or deletion it sends `recalculate(cohort, version)` to
  every control partition. Records superseded by a newer version already in the local catalog are
  skipped, so a fresh group does not recompute history. Each record is committed as soon as it is
  announced (`stream.agents.commits`), so a rebalance does not announce it again.
"""

from __future__ import annotations

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from cohorts.validate import FilterError, definition_from_record
from cohorts.wire import ControlMessage, WireError
from stream.agents.commits import commit_taken
from stream.catalog import RESERVATION_PREFIX, parse_cohort_key, read_record
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

    async def refuse(reason: str, event: faust.EventT) -> None:
        msg = event.message
        await outputs.dead_letter(reason, msg.topic, msg.partition, msg.offset, event.key, event.value)

    async def announce(event: faust.EventT) -> None:
        """Send `recalculate` for a new cohort version or a deletion; dead-letter a bad record."""
        cohort_id = parse_cohort_key(event.key)
        if cohort_id is None:
            if not (event.key or b"").startswith(RESERVATION_PREFIX):
                await refuse("invalid catalog key", event)
            return
        current = catalog.cohort(cohort_id)
        if event.value is None:
            team_id, version = (current.team_id if current else None), None
        else:
            try:
                record = read_record(cohort_id, event.value)
            except WireError:
                await refuse("invalid catalog record", event)
                return
            try:
                definition_from_record(record)
            except FilterError:  # still recalculated: the calculation report carries the error
                await refuse("invalid cohort definition", event)
            if current is not None and current.version > record.version:
                return
            team_id, version = record.team_id, record.version
        if team_id is None:
            return
        message = ControlMessage(type="recalculate", team_id=team_id, cohort_id=cohort_id, version=version)
        await outputs.to_every_control_partition(message)

    @app.agent(channels.catalog, name="catalog-recalculate")
    async def announce_changes(stream: faust.StreamT) -> None:
        """Also the one place that dead-letters bad catalog records (one group member reads each).

        Each record is committed once handled: a rebalance must not announce a version twice (each
        announcement is a recalculation of the cohort in every partition)."""
        await catalog.ready.wait()
        async for event in stream.events():
            await announce(event)
            await commit_taken(app.consumer, [event])
