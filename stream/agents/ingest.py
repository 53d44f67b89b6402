"""Ingest agents: validate PostHog inputs, gate unused events, re-key to `team:person`.

    clickhouse_events_json         -> EventInput  on cohort_person_inputs | dead letter
    clickhouse_person              -> PersonInput on cohort_person_inputs | dead letter
    clickhouse_person_distinct_id  -> validated and counted only (the api resolves distinct ids)

Gate: an event whose name no cohort of its team uses cannot change any condition, but it makes
its person known (design §4, negated roots). Such an event is forwarded with its properties
stripped the first time this process sees the person, and dropped (counted) afterwards. The set
of recently forwarded persons is a bounded in-memory cache: losing it only forwards more.
Forwarded events keep only the properties an event filter of their name reads (the fold reads
nothing else), so PostHog's large property maps do not travel through `cohort_person_inputs`.
Both decisions use the catalog as ingest sees it: a matcher added later counts the events ingested
after it (design §7). Forwarded inputs travel in per-partition batches (stream.input_batches).

Ingest holds no state that must survive a rebalance, so it reads its topics through a batch
consumer of its own group (stream.batch_consumer), outside faust's per-record path.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Final

import faust
from confluent_kafka import Message

from cohorts.topics import person_key
from cohorts.wire import EventInput
from stream.catalog import TeamCatalog
from stream.crash import run_or_crash
from stream.posthog import Rejected, decode_distinct_id, decode_event, decode_person, forwardable
from stream.runtime import Runtime
from stream.time_slices import TimeSlice

__all__ = ["KnownCache", "gate_event", "install"]

#: Persons remembered as "already forwarded" by the gate, per process.
KNOWN_CACHE_SIZE: Final[int] = 200_000


class KnownCache:
    """A bounded LRU set of `team:person` keys the gate has already forwarded."""

    def __init__(self, size: int = KNOWN_CACHE_SIZE) -> None:
        self._size = size
        self._keys: OrderedDict[bytes, None] = OrderedDict()

    def seen(self, key: bytes) -> bool:
        """True if `key` was seen before; records it either way."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return False

    def forget(self, key: bytes) -> None:
        self._keys.pop(key, None)


def gate_event(item: EventInput, team: TeamCatalog, known: KnownCache, key: bytes) -> EventInput | None:
    """The event to forward to the fold, or None to drop it (see the module docstring)."""
    read = team.event_property_keys.get(item.event)
    if read is None:
        if known.seen(key):
            return None
        read = frozenset()
    else:
        known.seen(key)
    properties = item.properties
    if read.issuperset(properties):
        return item
    return EventInput(
        team_id=item.team_id,
        person_id=item.person_id,
        event=item.event,
        timestamp_us=item.timestamp_us,
        properties={name: properties[name] for name in read if name in properties},
        uuid=item.uuid,
        source=item.source,
    )


def install(app: faust.App, rt: Runtime) -> None:
    """Run ingest as a task of the worker: one batch consumer (stream.batch_consumer) for the
    three PostHog topics, committing after the pre-commit flush of everything it produced."""
    outputs, metrics, batches, consumer = rt.outputs, rt.metrics, rt.input_batches, rt.ingest_consumer
    topics = rt.topics
    known = KnownCache()

    def ingest_event(message: Message) -> str | None:
        position = (message.topic(), message.partition(), message.offset())
        try:
            item = decode_event(message.value(), position, rt.clock())
        except Rejected as exc:
            return exc.reason
        key = person_key(item.team_id, item.person_id).encode()
        forwarded = gate_event(item, rt.catalog.team(item.team_id), known, key)
        if forwarded is None:
            metrics.gated.inc()
            return None
        try:
            value = forwardable(forwarded, key)
        except Rejected as exc:
            known.forget(key)  # nothing was forwarded: the person is not known through this event
            return exc.reason
        batches.add(key, value)
        return None

    def ingest_person(message: Message) -> str | None:
        try:
            item = decode_person(message.value(), (message.topic(), message.partition(), message.offset()))
            key = person_key(item.team_id, item.person_id).encode()
            value = forwardable(item, key)
        except Rejected as exc:
            return exc.reason
        batches.add(key, value)
        return None

    def check_distinct_id(message: Message) -> str | None:
        try:
            decode_distinct_id(message.value())
        except Rejected as exc:
            return exc.reason
        return None

    handlers: dict[str, Callable[[Message], str | None]] = {
        topics.events: ingest_event,
        topics.persons: ingest_person,
        topics.distinct_ids: check_distinct_id,
    }
    received = {topic: metrics.messages_in.labels(topic) for topic in handlers}
    forwarded_inputs = metrics.messages_out.labels(topics.person_inputs)

    turn = TimeSlice()

    async def ingest(records: list[Message]) -> None:
        refused: list[tuple[str, Message]] = []
        counts = Counter(message.topic() for message in records)
        before = batches.added
        turn.restart()
        for message in records:
            reason = handlers[message.topic()](message)
            if reason is not None:
                refused.append((reason, message))
            if turn.over():  # the person fold runs on this loop too (stream.time_slices)
                await turn.maybe_yield()
        for topic, count in counts.items():
            received[topic].inc(count)
        forwarded_inputs.inc(batches.added - before)
        for reason, message in refused:
            await outputs.dead_letter(
                reason, message.topic(), message.partition(), message.offset(), message.key(), message.value()
            )

    async def ingest_forever() -> None:
        while True:
            records = await consumer.batch()
            if records:
                await ingest(records)
            if consumer.due():
                await consumer.commit(app.producer.flush)

    @app.task
    async def ingest_inputs() -> None:
        await rt.catalog.ready.wait()
        await run_or_crash(app, "ingest", ingest_forever(), consumer.close)
