"""The control agent hands a batch's untaken messages back when a rebalance begins, and commits
the ones it took before a rebalance can forget them: the faust (0.15.3) behaviour that relies on,
pinned against faust's own classes.

A handed-back message must never be committed (Kafka delivers it again after the rebalance) and
must not hold the rebalance up (faust's `wait_empty` waits for every message an agent took). A
taken one must be committed even when a rebalance begins right after its batch (else it is taken
again).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from contextlib import nullcontext
from types import SimpleNamespace

from faust.events import Event
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from intervaltree import IntervalTree

from cohorts.wire import ControlMessage
from stream.agents.commits import commit_taken
from stream.agents.control import _hand_back, _rebalancing
from stream.control_batches import Received, Step

TOPIC = "cohort_control"


def _message(offset: int, generation_id: int = 1) -> ConsumerMessage:
    """A record as faust's aiokafka driver hands it to the streams."""
    tp = TP(TOPIC, 0)
    return ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=tp, generation_id=generation_id)


class _Recorder:
    """Stands in for faust's Consumer where a message reports its final acknowledgement."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        return True


def _event(message: ConsumerMessage, consumer: _Recorder) -> Event:
    return Event(SimpleNamespace(consumer=consumer), b"k", b"v", {}, message)  # type: ignore[arg-type]


def test_the_ack_take_events_sends_for_a_handed_back_message_never_reaches_the_consumer():
    """`take_events` acknowledges every event of a batch once the agent is done with it, the handed
    back ones too: that must not mark their offsets committable."""
    consumer = _Recorder()
    taken, handed_back = _event(_message(10), consumer), _event(_message(11), consumer)
    _hand_back([handed_back])
    assert taken.ack() is True
    assert handed_back.ack() is False
    assert consumer.acked == [10]


def test_wait_empty_stops_waiting_for_a_handed_back_message():
    """`Consumer.wait_empty` loops while it holds messages not acknowledged; each round drops the
    acknowledged ones from that set, a handed-back one included."""
    waiting, handed_back = _message(10), _message(11)
    _hand_back([SimpleNamespace(message=handed_back)])
    consumer = SimpleNamespace(_unacked_messages={waiting, handed_back})
    Consumer._clean_unacked_messages(consumer)  # type: ignore[arg-type]
    assert consumer._unacked_messages == {waiting}


def test_the_commit_stops_before_the_first_offset_never_acknowledged():
    """Offsets 10 and 11 taken, 12 handed back (never in the acknowledged list), 13 taken: faust
    commits 12, the position the partition is read again from."""
    tp = TP(TOPIC, 0)
    consumer = SimpleNamespace(
        _acked={tp: [10, 11, 13]},
        _acked_index={tp: {10, 11, 13}},
        _gap=defaultdict(IntervalTree),
        _committed_offset={tp: 10},
    )
    assert Consumer._new_offset(consumer, tp) == 12  # type: ignore[arg-type]


def _app(active: bool, generation: int, in_recovery: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        flow_control=SimpleNamespace(is_active=lambda: active),
        consumer_generation_id=generation,
        in_recovery=in_recovery,
    )


def _step(*generations: int) -> Step:
    tick = ControlMessage("tick")
    received = [Received(0, n, tick, None, SimpleNamespace(message=_message(n, g))) for n, g in enumerate(generations)]
    return Step(0, tuple(received))


def test_a_step_is_held_back_while_the_flow_is_stopped_or_when_fetched_in_an_earlier_generation():
    """The conditions under which faust's own stream would no longer hand a message on, and a table
    recovery, during which faust's flow runs but a write would be overwritten by the restore."""
    assert not _rebalancing(_app(True, 3), _step(3, 3))  # type: ignore[arg-type]
    assert _rebalancing(_app(False, 3), _step(3))  # type: ignore[arg-type]
    assert _rebalancing(_app(True, 4), _step(4, 3))  # type: ignore[arg-type]
    assert _rebalancing(_app(True, 3, in_recovery=True), _step(3))  # type: ignore[arg-type]


def test_a_rebalance_forgets_offsets_acknowledged_but_not_yet_committed():
    """`Consumer.on_partitions_revoked` clears the acknowledged offsets before the app's handler
    (where `wait_empty` commits) runs: only acknowledgements made after that are committed."""
    tp = TP(TOPIC, 0)
    seen: list[dict] = []

    async def app_handler(revoked: set) -> None:
        seen.append(dict(consumer._acked))

    consumer = SimpleNamespace(
        diag=SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None),
        app=SimpleNamespace(_start_span_from_rebalancing=lambda name: nullcontext()),
        _active_partitions=None,
        _paused_partitions=set(),
        _gap=defaultdict(IntervalTree),
        _acked=defaultdict(list, {tp: [10, 11]}),
        _acked_index=defaultdict(set, {tp: {10, 11}}),
        _read_offset=defaultdict(lambda: None),
        _committed_offset=defaultdict(lambda: None, {tp: 10}),
        _on_partitions_revoked=app_handler,
    )
    asyncio.run(Consumer.on_partitions_revoked(consumer, {tp}))  # type: ignore[arg-type]
    assert seen == [{}]


def test_a_commit_asked_for_while_one_is_under_way_only_waits_for_it():
    """`Consumer.commit` during another commit waits for that one and commits nothing itself: the
    offsets acknowledged after the other one collected its own stay uncommitted."""

    async def scenario() -> tuple[bool, list[str]]:
        under_way = asyncio.get_running_loop().create_future()
        forced: list[str] = []

        async def force_commit(*args: object, **kwargs: object) -> bool:
            forced.append("commit")
            return True

        consumer = SimpleNamespace(app=SimpleNamespace(client_only=False), _commit_fut=under_way, loop=None)
        consumer.maybe_wait_for_commit_to_finish = lambda: Consumer.maybe_wait_for_commit_to_finish(consumer)
        consumer.force_commit = force_commit
        asking = asyncio.ensure_future(Consumer.commit(consumer))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        under_way.set_result(None)
        return await asking, forced

    assert asyncio.run(scenario()) == (False, [])


class _Committer(_Recorder):
    """A consumer with one commit under way, which collected its offsets before the batch ended."""

    def __init__(self) -> None:
        super().__init__()
        self.under_way: asyncio.Future | None = None
        self.committed: list[list[int]] = []

    async def maybe_wait_for_commit_to_finish(self) -> bool:
        if self.under_way is None:
            return False
        await self.under_way
        self.under_way = None
        return True

    async def commit(self) -> bool:
        self.committed.append(list(self.acked))
        return True


def test_the_messages_taken_are_acknowledged_only_once_no_commit_is_under_way_then_committed():
    """Acknowledged while a commit is under way, the batch's offsets would wait for the next one,
    and a rebalance beginning meanwhile would forget them."""

    async def scenario() -> tuple[list[int], _Committer]:
        consumer = _Committer()
        consumer.under_way = asyncio.get_running_loop().create_future()
        taken = [_event(_message(n), consumer) for n in (10, 11)]
        committing = asyncio.ensure_future(commit_taken(consumer, taken))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        acked_while_under_way = list(consumer.acked)
        consumer.under_way.set_result(None)
        await committing
        return acked_while_under_way, consumer

    acked_while_under_way, consumer = asyncio.run(scenario())
    assert acked_while_under_way == []
    assert consumer.committed == [[10, 11]]


def test_a_handed_back_message_is_not_acknowledged_by_the_commit_of_the_batch():
    consumer = _Committer()
    taken, handed_back = _event(_message(10), consumer), _event(_message(11), consumer)
    _hand_back([handed_back])
    asyncio.run(commit_taken(consumer, [taken]))  # type: ignore[arg-type]
    assert handed_back.ack() is False
    assert consumer.committed == [[10]]
