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
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import faust

from cohorts.topics import person_key
from cohorts.wire import EventInput
from stream.catalog import TeamCatalog
from stream.posthog import Rejected, decode_distinct_id, decode_event, decode_person, forwardable
from stream.runtime import Runtime

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
    channels, outputs, metrics, batches = rt.channels, rt.outputs, rt.metrics, rt.input_batches
    forwarded_inputs = metrics.messages_out.labels(rt.topics.person_inputs)
    known = KnownCache()

    def forward(key: bytes, value: bytes) -> None:
        batches.add(key, value)
        forwarded_inputs.inc()

    @app.agent(channels.events, name="ingest-events")
    async def ingest_events(stream: faust.StreamT) -> None:
        await rt.catalog.ready.wait()
        received = metrics.messages_in.labels(rt.topics.events)
        async for event in stream.events():
            msg = event.message
            received.inc()
            try:
                item = decode_event(event.value, (msg.topic, msg.partition, msg.offset), rt.clock())
            except Rejected as exc:
                await outputs.dead_letter(exc.reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
                continue
            key = person_key(item.team_id, item.person_id).encode()
            forwarded = gate_event(item, rt.catalog.team(item.team_id), known, key)
            if forwarded is None:
                metrics.gated.inc()
                continue
            try:
                value = forwardable(forwarded, key)
            except Rejected as exc:
                known.forget(key)  # nothing was forwarded: the person is not known through this event
                await outputs.dead_letter(exc.reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
                continue
            forward(key, value)

    @app.agent(channels.persons, name="ingest-persons")
    async def ingest_persons(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            metrics.messages_in.labels(msg.topic).inc()
            try:
                item = decode_person(event.value, (msg.topic, msg.partition, msg.offset))
                key = person_key(item.team_id, item.person_id).encode()
                value = forwardable(item, key)
            except Rejected as exc:
                await outputs.dead_letter(exc.reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
                continue
            forward(key, value)

    @app.agent(channels.distinct_ids, name="ingest-distinct-ids")
    async def ingest_distinct_ids(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            metrics.messages_in.labels(msg.topic).inc()
            try:
                decode_distinct_id(event.value)
            except Rejected as exc:
                await outputs.dead_letter(exc.reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
