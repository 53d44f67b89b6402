"""Helpers of the api's read paths: keys, queued view logs, the feeder's batching, fast JSON. No broker."""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import pytest

from api.consumers import _next_batch
from api.publisher import PublishError, Unawaited
from api.responses import FastJSONResponse
from api.store import key


def test_key_escapes_separators_pads_ints_and_refuses_bools_and_negatives() -> None:
    assert key("mem", 1, "a:b%c") == b"mem:00000000000000000001:a%3Ab%25c"
    assert key("person", 7, "plain") == b"person:00000000000000000007:plain"
    assert key("p") + b":" + key("x:y") == key("p", "x:y")
    with pytest.raises(TypeError):
        key("mem", True)
    with pytest.raises(ValueError):
        key("mem", -1)


def done(offset: int | None = None, error: Exception | None = None) -> Future:
    future: Future = Future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(offset)
    return future


def test_unawaited_reports_in_flight_futures_and_the_end_of_the_delivered_ones() -> None:
    unawaited = Unawaited()
    assert unawaited.pending() == ([], 0)
    in_flight: Future = Future()
    for future in (done(4), in_flight, done(error=PublishError("lost")), done(2)):
        unawaited.add(future)
    assert unawaited.pending() == ([in_flight], 5)
    in_flight.set_result(9)
    assert unawaited.pending() == ([], 10)
    assert unawaited.pending() == ([], 10)  # the end never moves back once the futures are gone


class FakeConsumer:
    def __init__(self, queued: list[str]) -> None:
        self.queued = queued
        self.calls: list[tuple[str, Any]] = []

    def poll(self, timeout: float) -> str | None:
        self.calls.append(("poll", timeout))
        return self.queued.pop(0) if self.queued else None

    def consume(self, num_messages: int, timeout: float) -> list[str]:
        self.calls.append(("consume", (num_messages, timeout)))
        taken, self.queued = self.queued[:num_messages], self.queued[num_messages:]
        return taken


def test_next_batch_blocks_only_for_the_first_record_then_drains_without_waiting() -> None:
    consumer = FakeConsumer(["a", "b", "c", "d"])
    assert _next_batch(consumer, 0.05, 3) == ["a", "b", "c"]
    assert consumer.calls == [("poll", 0.05), ("consume", (2, 0))]
    assert _next_batch(consumer, 0.05, 3) == ["d"]
    assert _next_batch(consumer, 0.05, 3) == []
    assert consumer.calls[-1] == ("poll", 0.05)
    assert _next_batch(FakeConsumer(["x", "y"]), 0.05, 1) == ["x"]


def test_fast_json_matches_the_standard_encoder_and_falls_back_beyond_64_bit_integers() -> None:
    content = {"name": "café ✓", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    standard = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    assert FastJSONResponse(content).body == standard
    huge = {"value": 1 << 70}
    assert json.loads(FastJSONResponse(huge).body) == huge
