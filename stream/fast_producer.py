"""The worker's per-input outputs (flips, re-keyed inputs) through librdkafka, flushed before commits.

A flip costs one Kafka message, and a new person can flip dozens of cohorts at once. faust's
producer is aiokafka, running in the event loop: 20.6 µs of CPU per message (`bench.produce_micro`),
before faust's own wrapper. confluent-kafka queues a message in C and a librdkafka thread sends
it: 3.8 µs. So the messages one input causes go through this producer instead.

At-least-once is kept the way faust keeps it for its own producer: before committing offsets
faust awaits `app.producer.flush()`, and `attach` makes that flush also wait until every message
this producer accepted before the flush began is acknowledged by Kafka. A message that can never be
delivered makes the flush raise, so the offsets of the input that caused it are not committed.
Messages are never timed out locally (`message.timeout.ms=0`): through a broker outage they wait,
as the commit does. Keys land where Java and aiokafka put them (`partitioner: murmur2_random`).

A run of messages under one key (the flips of one input: a new person makes dozens) asks for a
delivery report on its last message only: the main thread pays 4.4 µs per message sent with a
report and 1.8 µs in runs of 21 (`bench.produce_micro --only-fast`). That is enough because one
key is one partition, the idempotent producer writes a partition's messages in the order they were
sent, and `enable.gapless.guarantee` makes any failure that would skip a message of a partition
fatal to the producer (librdkafka's INTRODUCTION.md, "Gap-less"; the one exception, a local
timeout, cannot happen here). So when the last message of a run is in Kafka, so is every message
sent to its partition before it, and every run ends with a reported message.

Never: flush by waiting for an empty queue (agents keep producing, that would starve commits),
or block the event loop while waiting (delivery reports are served by `poll(0)` between sleeps).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import faust
from confluent_kafka import KafkaError, Producer

__all__ = ["FastProducer", "attach"]

#: How often a flush looks at delivery reports while it waits.
_FLUSH_POLL_S: Final[float] = 0.002

#: Delivery reports are served every this many sends (and by every flush): a `poll` per message
#: cost as much as the send itself.
_POLL_EVERY: Final[int] = 256


class DeliveryFailed(RuntimeError):
    """Kafka refused a message for good; the inputs that caused it must not be committed."""


class _Round:
    """The messages sent between two flushes: how many Kafka has not acknowledged yet.

    One delivery callback per round, not one closure per message: a flip or changelog write costs
    a counter increment here."""

    __slots__ = ("failure", "offsets", "outstanding")

    def __init__(self, offsets: dict[str, dict[int, int]]) -> None:
        self.outstanding = 0
        self.failure: KafkaError | None = None
        self.offsets = offsets

    def delivered(self, error: KafkaError | None, message: Any) -> None:
        self.outstanding -= 1
        if error is not None:
            if self.failure is None:
                self.failure = error
            return
        if self.offsets:
            tracked = self.offsets.get(message.topic())
            if tracked is not None:
                partition, offset = message.partition(), message.offset()
                if offset > tracked.get(partition, -1):
                    tracked[partition] = offset


class FastProducer:
    def __init__(self, bootstrap: str, *, linger_ms: int, **config: Any) -> None:
        """`linger_ms`: how long librdkafka gathers messages into one request; the worker's value is
        `stream.runtime.WorkerTuning.producer_linger_ms`, so no second default is kept here."""
        logger = logging.getLogger("stream.fast_producer.librdkafka")
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "enable.gapless.guarantee": True,
            "linger.ms": linger_ms,
            "message.timeout.ms": 0,
            "logger": logger,
        }
        settings.update(config)
        self._producer = Producer(settings)
        self._offsets: dict[str, dict[int, int]] = {}
        self._round = _Round(self._offsets)
        self._delivered = self._round.delivered
        #: Rounds a flush closed whose messages are not all acknowledged yet, oldest first.
        self._closed: list[_Round] = []
        self._unpolled = 0

    def track_offsets(self, topic: str) -> dict[int, int]:
        """The highest acknowledged offset per partition of `topic`, kept current by delivery reports."""
        return self._offsets.setdefault(topic, {})

    def send(self, topic: str, key: bytes, value: bytes, partition: int = -1) -> None:
        """Queue one message (to `partition`, or where its key hashes); Kafka acknowledges it later (`flush`)."""
        self._round.outstanding += 1
        while True:
            try:
                self._producer.produce(topic, value, key, partition, on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: serve delivery reports until it drains
                self._producer.poll(0.01)
        self._unpolled += 1
        if self._unpolled >= _POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)

    def send_run(self, topic: str, key: bytes, values: Sequence[bytes]) -> None:
        """Queue several messages under one key, in order; only the last one is reported (module
        docstring), so this costs less per message than `send`."""
        last = len(values) - 1
        if last < 0:
            return
        produce, poll = self._producer.produce, self._producer.poll
        for value in values[:last]:  # `send`'s retry, inlined: a call per message cost 5% more here
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    poll(0.01)
        self.send(topic, key, values[last])
        self._unpolled += last
        if self._unpolled >= _POLL_EVERY:
            self._unpolled = 0
            poll(0)

    async def flush(self) -> None:
        """Wait until every message sent before this call is acknowledged; raise if one failed."""
        closing = self._round
        self._closed.append(closing)
        self._round = _Round(self._offsets)
        self._delivered = self._round.delivered
        while True:
            self._producer.poll(0)
            while self._closed and self._closed[0].outstanding == 0 and self._closed[0].failure is None:
                self._closed.pop(0)
            failed = next((r.failure for r in self._closed if r.failure is not None), None)
            if failed is not None:
                raise DeliveryFailed(f"Kafka refused a worker output: {failed}")
            if closing not in self._closed:
                return
            await asyncio.sleep(_FLUSH_POLL_S)

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)


def attach(
    app: faust.App,
    fast: FastProducer,
    *,
    before: Sequence[Callable[[], None]] = (),
    after: Sequence[Callable[[], None]] = (),
) -> None:
    """Make faust's pre-commit flush also flush `fast` (call before the worker starts).

    `before` run first (they hand buffered outputs to `fast`), `after` once everything is acknowledged
    (they record what Kafka now holds)."""
    producer = app.producer
    flush_faust = producer.flush

    async def flush() -> None:
        for hook in before:
            hook()
        await flush_faust()
        await fast.flush()
        for hook in after:
            hook()

    producer.flush = flush
