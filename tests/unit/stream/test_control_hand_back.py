"""The control agent hands a batch's untaken messages back when a rebalance begins: the faust
(0.15.3) behaviour that relies on, pinned against faust's own classes.

A handed-back message must never be committed (Kafka delivers it again after the rebalance) and
must not hold the rebalance up (faust's `wait_empty` waits for every message an agent took).
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from faust.events import Event
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from intervaltree import IntervalTree

from cohorts.wire import ControlMessage
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


def _app(active: bool, generation: int) -> SimpleNamespace:
    return SimpleNamespace(
        flow_control=SimpleNamespace(is_active=lambda: active),
        consumer_generation_id=generation,
    )


def _step(*generations: int) -> Step:
    tick = ControlMessage("tick")
    received = [Received(0, n, tick, None, SimpleNamespace(message=_message(n, g))) for n, g in enumerate(generations)]
    return Step(0, tuple(received))


def test_a_step_is_held_back_while_the_flow_is_stopped_or_when_fetched_in_an_earlier_generation():
    """The conditions under which faust's own stream would no longer hand a message on."""
    assert not _rebalancing(_app(True, 3), _step(3, 3))  # type: ignore[arg-type]
    assert _rebalancing(_app(False, 3), _step(3))  # type: ignore[arg-type]
    assert _rebalancing(_app(True, 4), _step(4, 3))  # type: ignore[arg-type]
