"""What the control agent does with a batch of `cohort_control` messages, in pure parts.

The control agent (`stream.agents.control`) takes the messages a few at a time (faust's
`take_events`) and hands each batch to `steps`, which groups it into the steps it takes:

1. Partitions are independent (each owns its keys, design §5) and each keeps its order: messages
   of one partition are taken in the order they came, and a step is taken at the position of its
   first message. Messages of other partitions in between never break a run.
2. A run of consecutive `recalculate` messages of one partition naming one team is one step: one
   scan of the team's records in that partition serves all of them (design-engine §6). A run holds
   at most `RUN_MAX` of them (then the next one starts a new run): the work of one step is what a
   rebalance may have to wait for.
3. Every other message is a step of its own, in its place: a tick, a static add or remove, a
   message refused as invalid (dead-lettered there), and a `recalculate` naming no team (its team is
   known only from the catalog, after the wait).

`recalculate_sketch` and `recalculate_record` apply a run's recalculations, in message order, to one
record: per cohort exactly what a recalculation on its own does (`stream.fold.recalculation_changes`,
`fold.recalculate`, or `fold.reevaluate` for a format-1 record), each with its own origin (the
offset of its own message, so replays and re-emission after an assignment work per message as
before, design-engine §4), and the record is written once.

Never: reads a clock, the store, Kafka or the catalog; reorders messages of one partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from cohorts.wire import ControlMessage
from stream import fold
from stream.catalog import TeamCatalog
from stream.state.codec import RecordSketch
from stream.state.record import Origin, PersonRecord

__all__ = ["RUN_MAX", "Recalculation", "Received", "Step", "recalculate_record", "recalculate_sketch", "steps"]

#: Recalculations one scan serves, at most. A scan shared by 16 costs about as much CPU as 5 scans
#: of one, where 16 scans of one cost 16 (design-engine §6); more saves little and makes a step longer.
RUN_MAX: Final[int] = 16


class Received(NamedTuple):
    """One consumed control message: its position, and the message, or None when it was refused."""

    partition: int
    offset: int
    message: ControlMessage | None
    #: Why it was refused (dead-letter reason detail), when `message` is None.
    refusal: str | None = None
    #: What the agent needs to dead-letter or acknowledge it (the faust event); opaque here.
    event: Any = None


@dataclass(frozen=True, slots=True)
class Step:
    """Messages of one partition handled together: one message, or a run of recalculations."""

    partition: int
    received: tuple[Received, ...]

    @property
    def offset(self) -> int:
        """The offset of its first message (the position re-emission after an assignment starts at)."""
        return self.received[0].offset

    @property
    def is_recalculation(self) -> bool:
        message = self.received[0].message
        return message is not None and message.type == "recalculate"


class Recalculation(NamedTuple):
    """One cohort of a run, as a record is recalculated for it: the cohort and its message's origin."""

    cohort_id: int
    origin: Origin


def _run_team(received: Received) -> int | None:
    """The team a message recalculates, when it may join a run of them (rule 2); else None."""
    message = received.message
    if message is None or message.type != "recalculate" or message.cohort_id is None:
        return None
    return message.team_id


def steps(batch: Iterable[Received], run_max: int = RUN_MAX) -> list[Step]:
    """The batch as steps, in the order of their first messages (rules 1 to 3)."""
    grouped: list[tuple[int, list[Received]]] = []
    #: partition -> the open run of that partition (its team and its messages), if its last message
    #: was a recalculation that may be joined
    open_runs: dict[int, tuple[int, list[Received]]] = {}
    for received in batch:
        partition = received.partition
        team_id = _run_team(received)
        run = open_runs.get(partition)
        if team_id is not None and run is not None and run[0] == team_id and len(run[1]) < run_max:
            run[1].append(received)
            continue
        members = [received]
        grouped.append((partition, members))
        if team_id is None:
            open_runs.pop(partition, None)
        else:
            open_runs[partition] = (team_id, members)
    return [Step(partition, tuple(members)) for partition, members in grouped]


def recalculate_sketch(
    sketch: RecordSketch,
    team_id: int,
    person_id: str,
    team: TeamCatalog,
    now_us: int,
    run: Sequence[Recalculation],
) -> tuple[bool, list[fold.Flip]]:
    """Apply each recalculation of the run to a format-2 sketch, in order; (write it?, flips).

    A cohort the sketch would come out of unchanged (`fold.recalculation_changes`) leaves it as it
    is, as a recalculation on its own does; each later cohort looks at the sketch as the earlier
    ones left it, as it would read the record they wrote. Until one changes it, the checks share
    their cohort-independent part (`fold.SketchRecalculation`).
    """
    if len(run) == 1:  # a recalculation on its own, the common case: nothing for a shared check to share
        ((cohort_id, origin),) = run
        changes, evaluated = fold.recalculation_check(sketch, team, cohort_id, now_us)
        if not changes:
            return False, []
        return True, fold.recalculate(sketch, team_id, person_id, origin, team, now_us, cohort_id, evaluated)
    changed = False
    flips: list[fold.Flip] = []
    check = None
    for cohort_id, origin in run:
        if check is None:
            check = fold.SketchRecalculation(sketch, team, now_us)
        if check.changes(cohort_id):
            flips += fold.recalculate(sketch, team_id, person_id, origin, team, now_us, cohort_id, check.evaluated)
            changed = True
            check = None  # the sketch changed: the next cohort looks at it afresh
    return changed, flips


def recalculate_record(
    record: PersonRecord,
    team_id: int,
    person_id: str,
    team: TeamCatalog,
    now_us: int,
    run: Sequence[Recalculation],
) -> list[fold.Flip]:
    """Apply each recalculation of the run to a decoded record (format 1: the first evaluates it in
    full, `fold.reevaluate`), in order; the flips. The caller writes the record."""
    flips: list[fold.Flip] = []
    for cohort_id, origin in run:
        flips += fold.reevaluate(record, team_id, person_id, origin, team, now_us, (cohort_id,)).flips
    return flips
