"""Everything the worker produces: flips, calculation reports, dead letters, control messages.

Each send is counted in metrics. Sends made while processing a message are flushed by faust
before that message's offset is committed, so outputs are at-least-once; the fold's outbox covers
a crash between the state write and the produce (design §5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from cohorts.timestamps import format_iso
from cohorts.wire import CalculationReport, ControlMessage, DeadLetter, MembershipChange
from stream.fast_producer import FastProducer
from stream.fold import Flip
from stream.metrics import LabelledChildren, WorkerMetrics

__all__ = ["DEAD_LETTER_KEY_BYTES", "DEAD_LETTER_VALUE_BYTES", "Outputs"]

#: How much of a bad message's value and key a dead letter keeps: base64 grows the value by a third,
#: and faust's producer sends at most 1,000,000 bytes (the source position finds the rest).
DEAD_LETTER_VALUE_BYTES: Final[int] = 512 * 1024
DEAD_LETTER_KEY_BYTES: Final[int] = 16 * 1024


class Outputs:
    """`fast` (stream.fast_producer, librdkafka) carries the flips; faust flushes it before
    committing, so at-least-once holds. Without it (unit tests), `producer` (the app's faust
    producer, looked up when sending) or the channel's own `send` does."""

    def __init__(
        self,
        channels: Any,
        metrics: WorkerMetrics,
        partitions: int,
        producer: Callable[[], Any] | None = None,
        fast: FastProducer | None = None,
    ) -> None:
        self._channels = channels
        self._metrics = metrics
        self._partitions = partitions
        self._producer = producer
        self._fast = fast
        self._sent = LabelledChildren(metrics.messages_out)
        self._flipped = LabelledChildren(metrics.flips)

    async def _send(self, channel: Any, key: bytes, value: bytes) -> None:
        if self._fast is not None:
            self._fast.send(channel.get_topic_name(), key, value)
        elif self._producer is None:
            await channel.send(key=key, value=value)
        else:
            await self._producer().send(channel.get_topic_name(), key, value, None, None, None)

    async def flips(self, flips: Sequence[Flip], *, replayed: bool = False) -> None:
        if not flips:
            return
        topic = self._channels.membership_changed
        name = topic.get_topic_name()
        fast = self._fast
        encode = MembershipChange.encode
        stamps: dict[int, str] = {}  # the flips of one input share their instant and person
        runs: dict[str, list[bytes]] = {}  # values by person, in order: one run per key
        entered = 0
        for team_id, person_id, cohort_id, is_entered, version, at_us in flips:
            stamp = stamps.get(at_us)
            if stamp is None:
                stamp = stamps[at_us] = format_iso(at_us)
            run = runs.get(person_id)
            if run is None:
                run = runs[person_id] = []
            run.append(encode(team_id, cohort_id, person_id, "entered" if is_entered else "left", stamp, version))
            entered += is_entered
        for person_id, values in runs.items():
            key = person_id.encode()
            if fast is not None:
                fast.send_run(name, key, values)
            else:
                for value in values:
                    await self._send(topic, key, value)
        self._sent.get(name).inc(len(flips))
        if replayed:
            self._metrics.replayed_flips.inc(len(flips))
        else:
            if entered:
                self._flipped.get("entered").inc(entered)
            if entered < len(flips):
                self._flipped.get("left").inc(len(flips) - entered)

    async def dead_letter(self, reason: str, topic: str, partition: int, offset: int, key: Any, value: Any) -> None:
        """The original is cut to its first DEAD_LETTER_VALUE_BYTES (and key) so the letter can be sent."""
        original = value[:DEAD_LETTER_VALUE_BYTES] if isinstance(value, bytes) else None
        letter = DeadLetter.of(reason, topic, partition, offset, original)
        channel = self._channels.dead_letters
        await channel.send(key=key[:DEAD_LETTER_KEY_BYTES] if isinstance(key, bytes) else None, value=letter.to_bytes())
        self._metrics.dead_letters.labels(reason).inc()
        self._metrics.messages_out.labels(channel.get_topic_name()).inc()

    async def report(self, report: CalculationReport) -> None:
        channel = self._channels.calculation_reports
        await channel.send(key=str(report.cohort_id).encode(), value=report.to_bytes())
        self._metrics.messages_out.labels(channel.get_topic_name()).inc()

    async def to_every_control_partition(self, message: ControlMessage) -> None:
        """Ticks and recalculations go to every partition explicitly (design §3 `cohort_control`)."""
        channel = self._channels.control
        value = message.to_bytes()
        for partition in range(self._partitions):
            await channel.send(key=message.type.encode(), value=value, partition=partition)
        self._metrics.messages_out.labels(channel.get_topic_name()).inc(self._partitions)
