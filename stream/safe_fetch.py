"""Five fixes to faust's fetching around rebalances, without which restarted workers skip inputs
or stop.

All were found by the SIGKILL and rebalance scenarios of tests/reliability (docs/reliability.md,
"Defects found"). The first four show the same way: a partition resumes past inputs nobody
processed.

1. **Fetch only after the seek.** At the end of a rebalance faust resumes the input partitions and
   then seeks them to their committed offsets (`Recovery.on_recovery_completed`). Records fetched in
   between are handed to the streams while flow control still discards them; after the seek the rest
   of that batch arrives, its first record lies beyond the offset just sought to, faust files the
   offsets in between as a "gap" (counted as processed, meant for compacted topics), and drops the
   re-fetched records of that range as already read. Here the input partitions of an assignment stay
   out of the fetch until the recovery's `perform_seek` has run and the flow resumes. Only a seek
   made while the consumer's flow runs counts: faust's fetch loop also seeks when a fetch returns
   while the flow is stopped for a rebalance (`Consumer.getmany`), and that seek can land after
   the assignment and before the table recovery. Counted, it released the input partitions at the
   recovery's first `resume_flow`, while the changelog was still being restored: the control agent
   wrote static adds that the restore then overwrote (scenario 2, docs/reliability.md).
   And a fetch asked for before an assignment (for the previous one's partitions) can return after
   it, with records of a kept partition from before its seek: faust hands them on, the seek sets
   the read offset back to the committed one, and the next record of that batch files everything
   in between as a gap (test_rebalance_recalculations: 10 recalculations never ran). So the input
   records of a fetch that spans an assignment are dropped here. The recovery's seek, still to
   come, reads them again; if it has already been made, the partition is sought to its committed
   offset once more (the fetch loop was waiting for this fetch, so nothing of the new assignment
   has been handed on yet).

2. **Fetch exactly the partitions asked for.** faust passes its live set of active partitions to
   the consumer thread, which may change it meanwhile, and aiokafka reads an empty set as "every
   partition": records of partitions faust is not reading are then fetched (their position moves on)
   and silently dropped by faust. Here the thread gets a copy, and an empty one fetches nothing.

3. **Re-read what was never committed.** After a rebalance faust drops the records its streams had
   queued and seeks every partition back to its committed offset, but aiokafka moves only those
   whose committed offset is above 0: a partition with no commit yet (a new group, or one whose
   first commit had not happened) keeps its position, and the dropped records are never delivered.
   Here such partitions are sought to their beginning, which is where they started.

4. **Never count a skipped record as processed.** A stream skips a record that reaches it while the
   flow is suspended or that was fetched in an earlier generation, and acknowledges it "so the lag
   does not grow" (`Stream._py_aiter`). That acknowledgement enters the offsets faust commits. During
   a rebalance faust has forgotten the partition's committed offset, so nothing stops a commit from
   jumping over the records before it: recalculations handed back by the control agent were
   committed and never processed (docs/reliability.md). A skipped record is the only one a stream
   acknowledges without tracking it first, so here such an acknowledgement records nothing; the
   record is read again from the committed offset.

5. **A partition without a position is not stuck.** faust's livelock detector reads the fetch
   position of every assigned partition, and aiokafka asserts that it has one. A partition held
   back by fix 1 until its seek, or sought to its beginning by fix 3, has none until it is fetched,
   and a table recovery on a loaded machine outlasts the detector's interval (2.5 commit
   intervals, 5 s by default): the assertion crashed the worker in the middle of a rebalance
   (test_catalog_rebalance). Such a partition is skipped; the next round checks it.

`safe_fetching(app)` must be called before the worker starts; it wraps whatever consumer class the
app uses (stream.read_committed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.consumer import ensure_TPset

__all__ = ["safe_fetching", "skipped"]


def skipped(message: Any) -> bool:
    """Whether a stream acknowledges `message` without having processed it (fix 4): streams track
    every record they hand to an agent before it is processed, and skip the others untracked."""
    return not message.tracked


def safe_fetching(app: faust.App) -> None:
    base = app.transport.Consumer

    class SafeFetchingConsumer(base):  # type: ignore[misc, valid-type]
        #: Input partitions of the current assignment that have not been sought yet.
        _unsought: frozenset[Any] = frozenset()

        #: Whether `perform_seek` ran since the assignment (the held partitions may then be fetched).
        _sought: bool = False

        #: Assignments so far: tells a fetch that spans one.
        _assignments: int = 0

        async def on_partitions_assigned(self, assigned: set[Any], generation_id: int = 0) -> None:
            self._unsought = frozenset(tp for tp in assigned if not self._is_changelog_tp(tp))
            self._sought = False
            self._assignments += 1
            await super().on_partitions_assigned(assigned, generation_id)

        def _set_active_tps(self, tps: set[Any]) -> set[Any]:
            active = super()._set_active_tps(tps)
            active.difference_update(self._unsought)
            return active

        def resume_partitions(self, tps: Iterable[Any]) -> None:
            super().resume_partitions(ensure_TPset(tps) - self._unsought)

        async def perform_seek(self) -> None:
            counts = self.flow_active  # stopped: the fetch loop's own seek during a rebalance
            await super().perform_seek()
            if counts:
                self._sought = True

        def resume_flow(self) -> None:
            """Release the held partitions with the flow: records fetched while faust's flow control
            is still suspended would be dropped by it, after their offsets were read."""
            if self._sought and self._unsought:
                held, self._unsought = self._unsought, frozenset()
                super().resume_partitions(held)
            super().resume_flow()

        async def seek_to_committed(self) -> Any:
            committed = await super().seek_to_committed()
            never = [tp for tp, offset in committed.items() if not offset]  # None or 0: not moved
            if never:
                await self._thread.seek_to_beginning(*never)
            return committed

        def ack(self, message: Any) -> bool:
            if skipped(message):
                return False
            return super().ack(message)

        def verify_event_path(self, now: float, tp: Any) -> None:
            try:
                super().verify_event_path(now, tp)
            except AssertionError:  # aiokafka: no position yet (fix 5)
                return

        async def _getmany(self, active_partitions: set[Any] | None, timeout: float) -> Any:
            if active_partitions is not None:
                active_partitions = frozenset(active_partitions)
                if not active_partitions:
                    return {}
            assignments = self._assignments
            records = await super()._getmany(active_partitions, timeout)
            if self._assignments == assignments or not records:
                return records
            early = {tp for tp in records if not self._is_changelog_tp(tp)}
            assigned = self.assignment()
            for tp in early - self._unsought:
                if tp in assigned:
                    await self._seek_to_committed_again(tp)
            return {tp: batch for tp, batch in records.items() if tp not in early}

        async def _seek_to_committed_again(self, tp: Any) -> None:
            """What `perform_seek` did for `tp` (with fix 3), from the committed offset it noted."""
            committed = self._committed_offset.get(tp)
            if committed:
                await self.seek(tp, committed)
            else:  # aiokafka takes only its own TopicPartition here
                await self._thread.seek_to_beginning(TopicPartition(tp.topic, tp.partition))

    SafeFetchingConsumer.__name__ = base.__name__
    app.transport.Consumer = SafeFetchingConsumer
