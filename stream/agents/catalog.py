"""Catalog agents: every worker follows the whole catalog; one of them announces changes.

- `follow_catalog` (a task in every worker): a group-less aiokafka consumer assigned to the single
  catalog partition reads it from the beginning into the in-memory `Catalog`, sets `ready` once it
  has reached the end offset it saw at start-up, and keeps following. Agents wait for `ready`.
- `announce_changes` (a task in every worker, reading through a consumer of its own group, so
  exactly one worker holds the catalog partition): for each new cohort version or deletion it
  sends `recalculate(cohort, version)` to every control partition. Records superseded by a newer
  version already in the local catalog are skipped, so a fresh group does not recompute history.

The announcer is not a faust agent. Inside faust's group the catalog partition went through faust's
rebalance handling (flow control, acknowledgements forgotten at a revocation, waiting for every
agent's step), and a rebalance there lost or repeated announcements
(tests/reliability/test_catalog_rebalance.py, docs/reliability.md). A librdkafka consumer
(stream.batch_consumer) hands over a batch, the announcer sends its messages, waits until Kafka
has them, then commits: a rebalance of its group happens only inside the next fetch, after that
commit, so it neither skips a record nor announces one twice. A crash between send and commit can
still repeat an announcement (at least once); the api folds a repeated report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Message

from cohorts.validate import FilterError, definition_from_record
from cohorts.wire import ControlMessage, WireError
from stream.catalog import RESERVATION_PREFIX, parse_cohort_key, read_record
from stream.crash import run_or_crash
from stream.runtime import Runtime

__all__ = ["install"]

#: How long a commit may take; a stopping worker gives up on it after that (the next holder of the
#: catalog partition then announces those records again).
_COMMIT_TIMEOUT_S: Final[float] = 30.0


def install(app: faust.App, rt: Runtime) -> None:
    outputs, metrics, catalog, announcer = rt.outputs, rt.metrics, rt.catalog, rt.announce_consumer

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

    async def refuse(reason: str, message: Message) -> None:
        await outputs.dead_letter(
            reason, message.topic(), message.partition(), message.offset(), message.key(), message.value()
        )

    async def announce(message: Message) -> None:
        """Send `recalculate` for a new cohort version or a deletion; dead-letter a bad record.

        Also the one place that dead-letters bad catalog records (one group member reads each)."""
        key, value = message.key(), message.value()
        cohort_id = parse_cohort_key(key)
        if cohort_id is None:
            if not (key or b"").startswith(RESERVATION_PREFIX):
                await refuse("invalid catalog key", message)
            return
        current = catalog.cohort(cohort_id)
        if value is None:
            team_id, version = (current.team_id if current else None), None
        else:
            try:
                record = read_record(cohort_id, value)
            except WireError:
                await refuse("invalid catalog record", message)
                return
            try:
                definition_from_record(record)
            except FilterError:  # still recalculated: the calculation report carries the error
                await refuse("invalid cohort definition", message)
            if current is not None and current.version > record.version:
                return
            team_id, version = record.team_id, record.version
        if team_id is None:
            return
        announcement = ControlMessage(type="recalculate", team_id=team_id, cohort_id=cohort_id, version=version)
        await outputs.to_every_control_partition(announcement)

    async def announce_forever() -> None:
        """Commit what was announced even when the worker stops inside a batch, so that the next
        holder of the partition does not announce it again; the rest is read again."""
        await catalog.ready.wait()
        while True:
            records = await announcer.batch()
            announced = 0
            try:
                for message in records:
                    stopping = await _finish(announce(message))
                    announced += 1
                    if stopping:
                        raise asyncio.CancelledError
            finally:
                if records:
                    announcer.unread(records[announced:])
                    await asyncio.wait_for(announcer.commit(app.producer.flush), _COMMIT_TIMEOUT_S)

    @app.task
    async def announce_changes() -> None:
        await run_or_crash(app, "catalog announcer", announce_forever(), announcer.close)


async def _finish(work: Awaitable[None]) -> bool:
    """Run `work` to its end even if the caller is cancelled meanwhile (the worker stops), so that
    one record's announcement is never cut off between control partitions; whether a cancellation
    came, for the caller to raise once it has noted the work done. The work's own error is raised."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])  # unlike awaiting the task, leaves it running when cancelled
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    return cancelled
