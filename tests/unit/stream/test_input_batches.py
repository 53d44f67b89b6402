"""InputBatches: per-partition batches in arrival order, sent on size, on linger and on flush."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from cohorts.wire import WireError, is_person_input_batch, split_person_input_batch
from stream.input_batches import InputBatches


def _value(n: int, size: int = 0) -> bytes:
    return orjson.dumps({"n": n, "pad": "x" * size})


class _Sent(list):
    def __call__(self, partition: int, key: bytes, value: bytes) -> None:
        self.append((partition, key, value))

    def inputs(self) -> list[tuple[int, int]]:
        """(partition, n) of every input sent, in sending order."""
        out = []
        for partition, _, value in self:
            items = split_person_input_batch(value) if is_person_input_batch(value) else [orjson.loads(value)]
            out += [(partition, item["n"]) for item in items]
        return out


def _batches(sent: _Sent, **kw) -> InputBatches:
    kw.setdefault("linger_s", 60.0)
    kw.setdefault("max_inputs", 3)
    return InputBatches(sent, lambda key: int(key[:1]), **kw)


async def test_a_full_batch_goes_at_once_keyed_by_its_first_input_and_in_arrival_order():
    sent = _Sent()
    batches = _batches(sent)
    for n, key in enumerate([b"0a", b"1b", b"0c", b"0d"]):
        batches.add(key, _value(n))
    assert len(sent) == 1
    partition, key, value = sent[0]
    assert (partition, key) == (0, b"0a")
    assert [item["n"] for item in split_person_input_batch(value)] == [0, 2, 3]
    assert batches.pending() == 1
    batches.flush()
    assert sent.inputs() == [(0, 0), (0, 2), (0, 3), (1, 1)]
    assert batches.pending() == 0


async def test_a_lone_input_is_sent_as_itself_not_as_a_batch_of_one():
    sent = _Sent()
    batches = _batches(sent)
    batches.add(b"2x", _value(7))
    batches.flush()
    assert sent == [(2, b"2x", _value(7))]
    batches.flush()  # nothing waiting: nothing sent
    assert len(sent) == 1


async def test_the_linger_timer_sends_what_waits_once():
    sent = _Sent()
    batches = _batches(sent, linger_s=0.02)
    batches.add(b"0a", _value(0))
    batches.add(b"1b", _value(1))
    assert sent == []
    await asyncio.sleep(0.1)
    assert sorted(sent.inputs()) == [(0, 0), (1, 1)]
    batches.add(b"0c", _value(2))  # a new timer for the next one
    await asyncio.sleep(0.1)
    assert sent.inputs()[-1] == (0, 2)


async def test_bytes_limit_closes_a_batch_and_an_oversize_input_follows_the_waiting_ones():
    sent = _Sent()
    batches = _batches(sent, max_inputs=100, max_bytes=100)
    batches.add(b"0a", _value(0, 40))
    batches.add(b"0b", _value(1, 40))  # would pass 100 bytes: the first goes alone
    assert sent.inputs() == [(0, 0)]
    batches.add(b"0c", _value(2, 200))  # larger than a batch: sent after the one waiting
    assert sent.inputs() == [(0, 0), (0, 1), (0, 2)]
    assert batches.pending() == 0


async def test_one_input_per_batch_sends_immediately():
    sent = _Sent()
    batches = _batches(sent, max_inputs=1)
    batches.add(b"3a", _value(0))
    assert sent == [(3, b"3a", _value(0))]


@pytest.mark.parametrize("raw", [b"[not json", b'{"a": 1}'])
def test_split_refuses_what_is_not_a_json_array(raw):
    with pytest.raises(WireError):
        split_person_input_batch(raw)


async def test_added_counts_every_input_whether_batched_sent_alone_or_still_waiting():
    """The forwarded-inputs metric reads `added`: one per input, not per message sent."""
    sent = _Sent()
    batches = _batches(sent, max_bytes=100)
    batches.add(b"0a", _value(0))
    batches.add(b"0b", _value(1, size=200))  # too large for a batch: sent alone
    batches.add(b"1c", _value(2))
    assert batches.added == 3
    assert batches.pending() == 1
