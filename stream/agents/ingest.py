"""Ingest agents: validate PostHog inputs, gate unused events, re-key to `team:person`.

    clickhouse_events_json         -> EventInput  on cohort_person_inputs | dead letter
    clickhouse_person              -> PersonInput on cohort_person_inputs | dead letter
    clickhouse_person_distinct_id  -> validated and counted only (the api resolves distinct ids)

Gate: an event whose name no cohort of its team uses cannot change any condition, but it makes
its person known (design §4, negated roots). Such an event is forwarded with its properties
stripped the first time this process sees the person, and dropped (counted) afterwards. The set
of recently forwarded persons is a bounded in-memory cache: losing it only forwards more.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import faust

from cohorts.topics import person_key
from cohorts.wire import EventInput
from stream.posthog import Rejected, decode_distinct_id, decode_event, decode_person
from stream.runtime import Runtime

__all__ = ["KnownCache", "install"]

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


def install(app: faust.App, rt: Runtime) -> None:
    channels, outputs, metrics = rt.channels, rt.outputs, rt.metrics
    known = KnownCache()

    @app.agent(channels.events, name="ingest-events")
    async def ingest_events(stream: faust.StreamT) -> None:
        await rt.catalog.ready.wait()
        async for event in stream.events():
            msg = event.message
            metrics.messages_in.labels(msg.topic).inc()
            try:
                item = decode_event(event.value, (msg.topic, msg.partition, msg.offset), rt.clock())
            except Rejected as exc:
                await outputs.dead_letter(exc.reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
                continue
            key = person_key(item.team_id, item.person_id).encode()
            if not rt.catalog.team(item.team_id).uses_event(item.event):
                if known.seen(key):
                    metrics.gated.inc()
                    continue
                item = EventInput(
                    team_id=item.team_id,
                    person_id=item.person_id,
                    event=item.event,
                    timestamp_us=item.timestamp_us,
                    properties={},
                    uuid=item.uuid,
                    source=item.source,
                )
            else:
                known.seen(key)
            await outputs.person_input(key, item.to_bytes())

    @app.agent(channels.persons, name="ingest-persons")
    async def ingest_persons(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            metrics.messages_in.labels(msg.topic).inc()
            try:
                item = decode_person(event.value, (msg.topic, msg.partition, msg.offset))
            except Rejected as exc:
                await outputs.dead_letter(exc.reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
                continue
            await outputs.person_input(person_key(item.team_id, item.person_id).encode(), item.to_bytes())

    @app.agent(channels.distinct_ids, name="ingest-distinct-ids")
    async def ingest_distinct_ids(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            metrics.messages_in.labels(msg.topic).inc()
            try:
                decode_distinct_id(event.value)
            except Rejected as exc:
                await outputs.dead_letter(exc.reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
