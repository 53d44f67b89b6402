"""Control agent: ticks, recalculations and static membership, per partition of `cohort_control`.

    tick(now_us?)                      re-evaluate the partition's persons whose deadline has passed
                                       (only their cohorts whose own deadline has passed)
    recalculate(team, cohort, version) re-evaluate that cohort (and what depends on it or is due)
                                       for every person of the team held in this partition,
                                       reporting started/finished/count to cohort_calculation_reports
    static_add / static_remove         keyed team:person: update the record and re-evaluate

Writes go to the partition of the control message being processed, which is the partition that
owns the keys (the topics are co-partitioned), so time-driven work can write the table (design §5).

The agent takes its messages in batches (at most `_BATCH_MAX`, waiting at most `_BATCH_LINGER_S` for
one to fill) and takes each batch in the steps `stream.control_batches.steps` groups it into: per
partition in order, a run of consecutive recalculations of one team as one step, anything else
alone. Once done with a batch the agent acknowledges and commits the messages it took
(`stream.agents.commits`); when a rebalance begins, the steps not yet taken are handed back
unacknowledged (`_hand_back`).

Ordering for every step (design §5):
1. The first step of a partition after an assignment rebuilds the partition's deadline index and
   re-sends the outbox flips that control messages at or after its first offset caused (a crash may
   have lost them between the state write and the produce).
2. Each person: read, fold, write (if changed), then send its flips.
3. A run of recalculations: each waits, in order, until the local catalog has the version it names
   (or, `catalog_wait_s` after the run began, reports the error) and sends its `started`
   report; then one scan of the team's records applies them all, each record read and written at
   most once (it first looks at each record through a sketch and folds only for the cohorts that
   change it); then each sends its `finished` report.

Person work (a tick's due persons, a recalculation's scan, re-emission) yields to the event loop
whenever `_SLICE_S` has passed since it last did, so the person fold, which shares the loop, never
waits longer than that for a turn: a tick that finds thousands of persons due at a bucket edge used
to hold the loop for most of a second (docs/benchmarks.md, "Reading the runs of 2026-11-27 14:20-15:40 UTC").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import faust

from cohorts.timestamps import format_iso
from cohorts.topics import person_key
from cohorts.wire import CalculationReport, ControlMessage, WireError
from stream import control_batches, fold
from stream.agents.commits import commit_taken
from stream.control_batches import Recalculation, Received, Step
from stream.posthog import INT64_MAX, MAX_ID_CHARS
from stream.runtime import Runtime
from stream.state.codec import FORMAT_VERSION, decode, sketch
from stream.state.record import SOURCE_CONTROL, Origin

__all__ = ["check_fields", "install"]

#: The longest stretch of person work between two yields to the event loop (module docstring).
_SLICE_S: Final[float] = 0.005
#: Control messages handled as one batch, at most. faust delivers the records of one fetch round-robin
#: over partitions, so a run of k recalculations per partition needs k times the partition count in
#: one batch (16 x 16). Its size does not lengthen a rebalance: see `_hand_back`.
_BATCH_MAX: Final[int] = 256
#: How long a batch waits to fill before the agent handles what it has: the latency it adds to a tick
#: or a static change.
_BATCH_LINGER_S: Final[float] = 0.02
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


@dataclass(slots=True)
class _Calculation:
    """One recalculation of a run, between its `started` and `finished` reports."""

    team_id: int
    cohort_id: int
    version: int
    origin: Origin
    started_at: str
    count: int = 0


class _Pacer:
    """Says when person work has held the event loop for `slice_s`, and yields it."""

    __slots__ = ("_slice_s", "_until")

    def __init__(self, slice_s: float) -> None:
        self._slice_s = slice_s
        self._until = time.perf_counter() + slice_s

    def due(self) -> bool:
        return time.perf_counter() >= self._until

    async def pause(self) -> None:
        await asyncio.sleep(0)
        self._until = time.perf_counter() + self._slice_s


def _rebalancing(app: faust.App, step: Step) -> bool:
    """Whether a rebalance is under way or happened since the step's messages were fetched: what
    faust's own stream checks before handing a message on (flow stopped, or an older generation).
    A table recovery counts too: faust resumes the flow while it restores the changelog, and a
    record written then is overwritten by the restore (stream.safe_fetch fix 1 keeps control
    messages from arriving then; this keeps them from being taken if one does)."""
    if not app.flow_control.is_active() or app.in_recovery:
        return True
    generation = app.consumer_generation_id
    return any(r.event.message.generation_id != generation for r in step.received)


def _hand_back(events: Iterable[faust.EventT]) -> None:
    """Leave messages of a batch unprocessed and unacknowledged, for Kafka to deliver again.

    A rebalance waits until every message an agent has taken is acknowledged (faust's
    `Consumer.wait_empty`), and the agent acknowledges a batch's messages only after all of them
    (`commit_taken`): so the steps after a rebalance began are not taken, and it waits for one
    step, as it waited for one message before batches. After the rebalance faust seeks every
    partition back to its committed offset (stream.safe_fetch, fix 3, for one never committed),
    which these messages are at or after, so whoever owns the partition then reads them again
    (tests/reliability/test_rebalance_recalculations.py). faust-streaming 0.15.3 internals, pinned
    by tests/unit/stream/test_control_hand_back.py: a message marked acknowledged without
    `Consumer.ack` never joins the offsets faust commits (the commit stops before it), the ack
    `take_events` sends later changes nothing, and `wait_empty` stops waiting for it.
    """
    for event in events:
        event.message.acked = True


def _positions(events: Iterable[faust.EventT]) -> str:
    """`partition:first-last` per partition, for the log: which offsets must be read again."""
    offsets: dict[int, list[int]] = {}
    for event in events:
        offsets.setdefault(event.message.partition, []).append(event.message.offset)
    return ", ".join(f"{p}:{min(o)}-{max(o)}" for p, o in sorted(offsets.items()))


def _origin(received: Received) -> Origin:
    """The message's own position: what its flips and state changes are filed under (design §5)."""
    return (SOURCE_CONTROL, received.partition, received.offset)


def install(app: faust.App, rt: Runtime) -> None:
    channels, outputs, metrics, store, catalog = rt.channels, rt.outputs, rt.metrics, rt.store, rt.catalog

    pacer = _Pacer(_SLICE_S)

    async def reemit_after_assignment(partition: int, offset: int) -> None:
        _, pending = store.ensure_index(partition, offset)
        for key, record in pending:
            team_id, person_id = fold.split_person_key(key.decode())
            start = next(
                i for i, f in enumerate(record.outbox) if f.origin[0] == SOURCE_CONTROL and f.origin[2] >= offset
            )
            await outputs.flips(fold.outbox_flips(record, team_id, person_id, start), replayed=True)
            if pacer.due():
                await pacer.pause()

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
        for key in due:
            await reevaluate_key(key, partition, origin, now_us, ())
            if pacer.due():
                await pacer.pause()
        metrics.deadlines_scheduled.labels(str(partition)).set(len(index))

    async def begin(partition: int, message: ControlMessage, origin: Origin, waits_until: float) -> _Calculation | None:
        """Wait for the catalog to reach the message's version, then send `started` (and, if the wait
        timed out, `finished` with the error). The calculation to run, or None.

        The waits of one run share its deadline (`waits_until`, event-loop time), so a lagging
        catalog holds a run, and a rebalance waiting for it, as long as it held one message."""
        cohort_id = message.cohort_id
        assert cohort_id is not None
        timeout_s = max(0.0, waits_until - asyncio.get_running_loop().time())
        caught_up = await catalog.wait_for(cohort_id, message.version, timeout_s)
        definition = catalog.cohort(cohort_id)
        team_id = message.team_id if message.team_id is not None else getattr(definition, "team_id", None)
        if team_id is None:
            metrics.recalculations.labels("unknown_cohort").inc()
            return None
        version = definition.version if definition is not None else (message.version or 0)
        started_at = format_iso(rt.clock())
        await outputs.report(CalculationReport(team_id, cohort_id, version, partition, started_at))
        if not caught_up:
            error = f"catalog did not reach version {message.version} within {rt.tuning.catalog_wait_s:g} s"
            await outputs.report(
                CalculationReport(
                    team_id, cohort_id, version, partition, started_at, format_iso(rt.clock()), None, error
                )
            )
            metrics.recalculations.labels("error").inc()
            return None
        return _Calculation(team_id, cohort_id, version, origin, started_at)

    async def recalculate(partition: int, run: Sequence[Received]) -> None:
        """A run of recalculations of one team (one message, or several: stream.control_batches),
        with one scan of the team's records in the partition."""
        waits_until = asyncio.get_running_loop().time() + rt.tuning.catalog_wait_s
        calculations = []
        for received in run:
            assert received.message is not None
            calculation = await begin(partition, received.message, _origin(received), waits_until)
            if calculation is not None:
                calculations.append(calculation)
        if not calculations:
            return
        team_id = calculations[0].team_id
        assert all(c.team_id == team_id for c in calculations), "a run names one team"
        plan = [Recalculation(c.cohort_id, c.origin) for c in calculations]
        now_us = rt.clock()
        metrics.recalculation_scans.inc()
        for key, raw in store.scan(partition, f"{team_id}:".encode()):
            team = catalog.team(team_id)
            _, person_id = fold.split_person_key(key.decode())
            first_look = sketch(raw)
            if first_look.version != FORMAT_VERSION:  # an old record: decoded and evaluated in full
                record = decode(raw)
                flips = control_batches.recalculate_record(record, team_id, person_id, team, now_us, plan)
                store.put(key, record, partition, raw)
                members = record.members
            else:  # most persons: nothing changes (stream.fold.recalculation_changes)
                changed, flips = control_batches.recalculate_sketch(first_look, team_id, person_id, team, now_us, plan)
                if changed:
                    store.put(key, first_look, partition, raw)
                members = first_look.member_ids()
            await outputs.flips(flips)
            for calculation in calculations:
                calculation.count += calculation.cohort_id in members
            if pacer.due():
                await pacer.pause()
        for c in calculations:
            error = catalog.error(c.cohort_id)
            finished_at = format_iso(rt.clock())
            await outputs.report(
                CalculationReport(team_id, c.cohort_id, c.version, partition, c.started_at, finished_at, c.count, error)
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

    handlers = {"tick": tick, "static_add": static_membership, "static_remove": static_membership}

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

    def receive(event: faust.EventT) -> Received:
        msg = event.message
        metrics.messages_in.labels(msg.topic).inc()
        try:
            return Received(msg.partition, msg.offset, parse(event.value, msg.partition), None, event)
        except WireError as exc:
            return Received(msg.partition, msg.offset, None, str(exc), event)

    async def take(step: Step) -> None:
        if step.is_recalculation:
            await recalculate(step.partition, step.received)
            return
        (received,) = step.received
        if received.message is None:
            msg, event = received.event.message, received.event
            reason = "invalid control message"
            await outputs.dead_letter(reason, msg.topic, msg.partition, msg.offset, event.key, event.value)
            app.log.warning("control message at %s:%s refused: %s", msg.partition, msg.offset, received.refusal)
            return
        await handlers[received.message.type](step.partition, received.message, _origin(received))

    async def take_batch(batch: Sequence[Step]) -> list[faust.EventT]:
        """Take the steps in order until a rebalance begins, then hand the rest back; the events taken."""
        taken: list[faust.EventT] = []
        for done, step in enumerate(batch):
            if _rebalancing(app, step):
                left = [r.event for later in batch[done:] for r in later.received]
                _hand_back(left)
                app.log.info(
                    "rebalance: %d control messages handed back, to be read again (%s)", len(left), _positions(left)
                )
                break
            await reemit_after_assignment(step.partition, step.offset)
            await take(step)
            taken += (r.event for r in step.received)
            if pacer.due():
                await pacer.pause()
        return taken

    @app.agent(channels.control, name="control")
    async def control(stream: faust.StreamT) -> None:
        await catalog.ready.wait()
        async for events in stream.take_events(_BATCH_MAX, within=_BATCH_LINGER_S):
            taken = await take_batch(control_batches.steps(receive(event) for event in events))
            await commit_taken(app.consumer, taken)

    @app.timer(interval=rt.tuning.tick_interval_s, on_leader=True)
    async def send_ticks() -> None:
        """Design §5: expiry arrives as messages, so a tick reaches every partition."""
        await outputs.to_every_control_partition(ControlMessage(type="tick"))

    async def forget_indexes(*_args: object, **_kwargs: object) -> None:
        store.forget_indexes()

    app.on_partitions_revoked.connect(forget_indexes)
    app.on_partitions_assigned.connect(forget_indexes)
