"""Person fold: `cohort_person_inputs` -> person record -> flips.

The inputs are read by `stream.fold_feed` (librdkafka, the partitions faust assigned this worker),
outside faust's per-record path. Backfill inputs (`cohorts backfill`, design-engine §7) take the
same path through `fold.apply_backfill`.

A message holds one input or a batch of them (stream.input_batches); per input, in this order
(design §5):
1. decode the input (a malformed one is dead-lettered and skipped);
2. read the person record, fold the input with the team's catalog at the worker's now;
3. write the record (one table write, only if it changed) and update the deadline index;
4. send the flips (a replay re-sends the outbox flips it caused).
The feed runs the pre-commit flush (what step 4 sent) before committing the input's offset.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import orjson
from confluent_kafka import Message

from cohorts.topics import person_key
from cohorts.wire import (
    BackfillInput,
    EventInput,
    PersonInput,
    WireError,
    is_person_input_batch,
    person_input_json,
    person_input_of,
    split_person_input_batch,
)
from stream import fold
from stream.crash import run_or_crash
from stream.fold_feed import FoldFeed
from stream.metrics import LabelledChildren
from stream.runtime import Runtime
from stream.state.record import SOURCE_EVENTS, Origin, source_code

__all__ = ["check_backfill", "install", "release_before_tables_close"]

Input = EventInput | PersonInput | BackfillInput


def check_backfill(item: BackfillInput, source: int) -> None:
    """Raise WireError unless a backfill input is well-typed and names an event of the events topic."""
    _, partition, offset = item.source
    if source != SOURCE_EVENTS:
        raise WireError("backfill input: source is not the events topic")
    if not all(type(n) is int and n >= 0 for n in (partition, offset)) or type(item.timestamp_us) is not int:
        raise WireError("backfill input: partition, offset and timestamp_us must be integers")
    if not isinstance(item.properties, dict) or not isinstance(item.event, str):
        raise WireError("backfill input: event must be a string and properties an object")
    if not isinstance(item.matchers, list) or not all(isinstance(m, str) for m in item.matchers):
        raise WireError("backfill input: matchers must be a list of strings")


class _Refused(Exception):
    """An input the fold does not apply; its dead letter carries `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _element_bytes(element: Any) -> bytes:
    """A batch element as JSON again, for its dead letter; empty if orjson cannot write it back
    (it reads 1,024 levels of nesting but writes 255; the letter's position finds the batch)."""
    try:
        return orjson.dumps(element)
    except orjson.JSONEncodeError:
        return b""


def install(app: faust.App, rt: Runtime) -> None:
    outputs, metrics, store, feed = rt.outputs, rt.metrics, rt.store, rt.fold_feed
    partitions, partition_of = rt.topics.partitions, rt.partitioner.partition
    sources = {name: source_code(rt.topics, name) for name in (rt.topics.events, rt.topics.persons)}
    received = metrics.messages_in.labels(rt.topics.person_inputs)
    outcomes = LabelledChildren(metrics.outcomes)

    def origin_of(item: Input) -> Origin:
        """The input's source position as the record stores it; WireError/ValueError/TypeError if bad."""
        if item.source is None:
            raise WireError("input without a source position")
        source = sources.get(item.source[0])
        if source is None:
            source = source_code(rt.topics, item.source[0])  # raises ValueError: not an input topic
        origin = (source, item.source[1], item.source[2])
        if isinstance(item, BackfillInput):
            check_backfill(item, source)
        return origin

    async def fold_one(item: Input, origin: Origin, key: bytes, partition: int) -> None:
        started = time.perf_counter()
        raw, record = store.get(key, partition)
        team = rt.catalog.team(item.team_id)
        if isinstance(item, EventInput):
            result = fold.apply_event(record, item, origin, team, rt.clock())
        elif isinstance(item, BackfillInput):
            result = fold.apply_backfill(record, item, team, rt.clock())
        else:
            result = fold.apply_person(record, item, origin, team, rt.clock())
        if result.record is not None:
            store.put(key, result.record, partition, raw)
        elif result.outcome == "replayed" and raw is not None:
            store.rewrite(key, raw, partition)  # the changelog may lack the write the replayed input made
        metrics.fold_seconds.observe(time.perf_counter() - started)
        outcomes.get(result.outcome).inc()
        if result.flips:
            await outputs.flips(result.flips, replayed=result.outcome == "replayed")

    def checked(data: Any, partition: int) -> tuple[Input, Origin, bytes]:
        """The input, its source position and its key; _Refused with the dead-letter reason if bad."""
        try:
            item = person_input_of(data)
            origin = origin_of(item)
        except (WireError, ValueError, TypeError) as exc:  # TypeError: a source that is not [str, int, int]
            raise _Refused("invalid person input") from exc
        key = person_key(item.team_id, item.person_id).encode()
        if partition_of(key, partitions) != partition:
            raise _Refused("wrong key or partition")
        return item, origin, key

    async def fold_record(message: Message) -> None:
        """Fold one message of `cohort_person_inputs`: one input or a batch, each input on its own."""
        topic, partition, offset, key, value = (
            message.topic(),
            message.partition(),
            message.offset(),
            message.key(),
            message.value(),
        )
        batch = isinstance(value, bytes) and is_person_input_batch(value)
        try:
            elements = split_person_input_batch(value) if batch else [person_input_json(value)]
        except WireError:
            if not batch:
                received.inc()
            await outputs.dead_letter("invalid person input", topic, partition, offset, key, value)
            return
        received.inc(len(elements))
        for element in elements:  # each input of a batch is checked and dead-lettered on its own
            try:
                item, origin, item_key = checked(element, partition)
                if not batch and item_key != key:  # a batch's key is its first input's
                    raise _Refused("wrong key or partition")
            except _Refused as refused:
                original = _element_bytes(element) if batch else value
                await outputs.dead_letter(refused.reason, topic, partition, offset, key, original)
                continue
            await fold_one(item, origin, item_key, partition)

    @app.task
    async def fold_inputs() -> None:
        await rt.catalog.ready.wait()
        await run_or_crash(app, "person fold", feed.run(fold_record), feed.close)

    @app.on_rebalance_complete.connect
    async def follow_assignment(sender: faust.App, **kwargs: Any) -> None:
        """faust recovered the tables of its assignment: fold the same partitions of the inputs."""
        control = rt.topics.control
        await feed.follow(tp.partition for tp in app.consumer.assignment() if tp.topic == control)

    @app.on_partitions_revoked.connect
    async def release_assignment(sender: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        """faust waited for its agents and flushed; the fold stops too before the partitions move."""
        await feed.release()

    release_before_tables_close(app, feed)


def release_before_tables_close(app: faust.App, feed: FoldFeed) -> None:
    """Release the feed when the worker stops, before faust closes the tables' databases.

    faust-streaming 0.15.3 closes them in `App._stop_consumer`, before it stops the app's tasks,
    so the fold task would still write to closed databases; the feed is released first
    (pinned by tests/unit/stream/test_fold_stop.py)."""
    stop_consumer = app._stop_consumer

    async def release_then_stop_consumer() -> None:
        await feed.release()
        await stop_consumer()

    app._stop_consumer = release_then_stop_consumer  # type: ignore[method-assign]
