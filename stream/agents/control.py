"""Control agent: ticks, recalculations and static membership, per partition of `cohort_control`.

    tick(now_us?)                      re-evaluate the partition's persons whose deadline has passed
                                       (only their cohorts whose own deadline has passed)
    recalculate(team, cohort, version) re-evaluate that cohort (and what depends on it or is due)
                                       for every person of the team held in this partition,
                                       reporting started/finished/count to cohort_calculation_reports
    static_add / static_remove         keyed team:person: update the record and re-evaluate

Writes go to the partition of the control message being processed, which is the partition that
owns the keys (the topics are co-partitioned), so time-driven work can write the table (design §5).

Ordering for every message (design §5):
1. The first control message after an assignment rebuilds the partition's deadline index and
   re-sends the outbox flips that control messages at or after its offset caused (a crash may have
   lost them between the state write and the produce).
2. Each person: read, fold, write (if changed), then send its flips.
3. A recalculation waits until the local catalog has the version it names (or times out and
   reports the error); it yields to the event loop every `_CHUNK` persons. It first looks at each
   record through a sketch and folds (reads, writes) only those the cohort changes.
"""

from __future__ import annotations

import asyncio
from typing import Final

import faust

from cohorts.timestamps import format_iso
from cohorts.topics import person_key
from cohorts.wire import CalculationReport, ControlMessage, WireError
from stream import fold
from stream.posthog import INT64_MAX, MAX_ID_CHARS
from stream.runtime import Runtime
from stream.state.codec import FORMAT_VERSION, sketch
from stream.state.record import SOURCE_CONTROL, Origin

__all__ = ["check_fields", "install"]

#: Persons handled between two yields to the event loop during ticks and recalculations.
_CHUNK: Final[int] = 256
_TYPES: Final = frozenset({"tick", "recalculate", "static_add", "static_remove"})
#: The last instant `format_iso` can write (9999-12-31T23:59:59.999999Z): a tick's `now_us` bound.
_MAX_NOW_US: Final[int] = 253_402_300_799_999_999


def check_fields(message: ControlMessage) -> None:
    """WireError unless every field has the type the api and the timer write (JSON allows any)."""
    if not isinstance(message.type, str) or message.type not in _TYPES:
        raise WireError(f"unknown control type {message.type!r}")
    for name in ("team_id", "cohort_id", "version"):
        value = getattr(message, name)
        if value is not None and not (type(value) is int and 0 <= value <= INT64_MAX):
            raise WireError(f"{name} must be a non-negative 64-bit integer")
    person_id = message.person_id
    if person_id is not None and not (isinstance(person_id, str) and 0 < len(person_id) <= MAX_ID_CHARS):
        raise WireError(f"person_id must be a non-empty string of at most {MAX_ID_CHARS} characters")
    if message.now_us is not None and not (type(message.now_us) is int and 0 <= message.now_us <= _MAX_NOW_US):
        raise WireError("now_us must be epoch microseconds between 1970 and 9999")


def install(app: faust.App, rt: Runtime) -> None:
    channels, outputs, metrics, store, catalog = rt.channels, rt.outputs, rt.metrics, rt.store, rt.catalog

    async def reemit_after_assignment(partition: int, offset: int) -> None:
        _, pending = store.ensure_index(partition, offset)
        for key, record in pending:
            team_id, person_id = fold.split_person_key(key.decode())
            start = next(
                i for i, f in enumerate(record.outbox) if f.origin[0] == SOURCE_CONTROL and f.origin[2] >= offset
            )
            await outputs.flips(fold.outbox_flips(record, team_id, person_id, start), replayed=True)

    async def reevaluate_key(
        key: bytes, partition: int, origin: Origin, now_us: int, cohorts: tuple[int, ...]
    ) -> fold.FoldResult | None:
        """Re-evaluate one person: `cohorts` changed definition (none for a tick); whatever is due
        is evaluated too (stream.fold rule 5)."""
        raw, record = store.get(key, partition)
        if record is None:
            return None
        team_id, person_id = fold.split_person_key(key.decode())
        result = fold.reevaluate(record, team_id, person_id, origin, catalog.team(team_id), now_us, cohorts)
        if result.record is not None:
            store.put(key, result.record, partition, raw)
        await outputs.flips(result.flips)
        return result

    async def tick(partition: int, message: ControlMessage, origin: Origin) -> None:
        now_us = message.now_us if message.now_us is not None else rt.clock()
        index = store.index(partition)
        assert index is not None, "reemit_after_assignment builds the index first"
        due = index.pop_due(now_us)
        metrics.deadline_backlog.labels(str(partition)).set(len(due))
        for done, key in enumerate(due, 1):
            await reevaluate_key(key, partition, origin, now_us, ())
            if done % _CHUNK == 0:
                await asyncio.sleep(0)
        metrics.deadlines_scheduled.labels(str(partition)).set(len(index))

    async def recalculate(partition: int, message: ControlMessage, origin: Origin) -> None:
        cohort_id = message.cohort_id
        assert cohort_id is not None
        caught_up = await catalog.wait_for(cohort_id, message.version, rt.tuning.catalog_wait_s)
        definition = catalog.cohort(cohort_id)
        team_id = message.team_id if message.team_id is not None else getattr(definition, "team_id", None)
        if team_id is None:
            metrics.recalculations.labels("unknown_cohort").inc()
            return
        version = definition.version if definition is not None else (message.version or 0)
        now_us = rt.clock()
        started_at = format_iso(now_us)
        await outputs.report(CalculationReport(team_id, cohort_id, version, partition, started_at))
        if not caught_up:
            error = f"catalog did not reach version {message.version} within {rt.tuning.catalog_wait_s:g} s"
            await outputs.report(
                CalculationReport(
                    team_id, cohort_id, version, partition, started_at, format_iso(rt.clock()), None, error
                )
            )
            metrics.recalculations.labels("error").inc()
            return
        count = 0
        prefix = f"{team_id}:".encode()
        for done, (key, raw) in enumerate(store.scan(partition, prefix), 1):
            first_look = sketch(raw)
            team = catalog.team(team_id)
            if first_look.version != FORMAT_VERSION:  # an old record: decoded and evaluated in full
                result = await reevaluate_key(key, partition, origin, now_us, (cohort_id,))
                count += result is not None and result.record is not None and cohort_id in result.record.members
            elif fold.recalculation_changes(first_look, team, cohort_id, now_us):
                _, person_id = fold.split_person_key(key.decode())
                flips = fold.recalculate(first_look, team_id, person_id, origin, team, now_us, cohort_id)
                store.put(key, first_look, partition, raw)
                await outputs.flips(flips)
                count += cohort_id in first_look.members
            else:  # most persons: the record stays as it is (stream.fold.recalculation_changes)
                count += cohort_id in first_look.members
            if done % _CHUNK == 0:
                await asyncio.sleep(0)
        error = catalog.error(cohort_id)
        await outputs.report(
            CalculationReport(team_id, cohort_id, version, partition, started_at, format_iso(rt.clock()), count, error)
        )
        metrics.recalculations.labels("error" if error else "ok").inc()

    async def static_membership(partition: int, message: ControlMessage, origin: Origin) -> None:
        assert message.team_id is not None and message.person_id is not None
        key = person_key(message.team_id, message.person_id).encode()
        raw, record = store.get(key, partition)
        result = fold.apply_static(record, message, origin, catalog.team(message.team_id), rt.clock())
        if result.record is not None:
            store.put(key, result.record, partition, raw)
        elif result.outcome == "replayed" and raw is not None:
            store.rewrite(key, raw, partition)  # the changelog may lack the write the replayed input made
        metrics.outcomes.labels(result.outcome).inc()
        await outputs.flips(result.flips, replayed=result.outcome == "replayed")

    handlers = {
        "tick": tick,
        "recalculate": recalculate,
        "static_add": static_membership,
        "static_remove": static_membership,
    }

    def parse(raw: bytes | None, partition: int) -> ControlMessage:
        """A control message fit for its handler, or WireError (dead-lettered by the caller)."""
        message = ControlMessage.from_bytes(raw or b"")
        check_fields(message)
        if message.type == "recalculate" and message.cohort_id is None:
            raise WireError("recalculate needs cohort_id")
        if message.type in ("static_add", "static_remove"):
            if message.team_id is None or message.person_id is None or message.cohort_id is None:
                raise WireError(f"{message.type} needs team_id, cohort_id and person_id")
            key = person_key(message.team_id, message.person_id).encode()
            if rt.partitioner.partition(key, rt.topics.partitions) != partition:
                raise WireError(f"{message.type} on partition {partition}, but its key belongs elsewhere")
        return message

    @app.agent(channels.control, name="control")
    async def control(stream: faust.StreamT) -> None:
        await catalog.ready.wait()
        async for event in stream.events():
            msg = event.message
            metrics.messages_in.labels(msg.topic).inc()
            origin = (SOURCE_CONTROL, msg.partition, msg.offset)
            await reemit_after_assignment(msg.partition, msg.offset)
            try:
                message = parse(event.value, msg.partition)
            except WireError as exc:
                reason = "invalid control message"
                await outputs.dead_letter(reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
                app.log.warning("control message at %s:%s refused: %s", msg.partition, msg.offset, exc)
                continue
            await handlers[message.type](msg.partition, message, origin)

    @app.timer(interval=rt.tuning.tick_interval_s, on_leader=True)
    async def send_ticks() -> None:
        """Design §5: expiry arrives as messages, so a tick reaches every partition."""
        await outputs.to_every_control_partition(ControlMessage(type="tick"))

    async def forget_indexes(*_args: object, **_kwargs: object) -> None:
        store.forget_indexes()

    app.on_partitions_revoked.connect(forget_indexes)
    app.on_partitions_assigned.connect(forget_indexes)
