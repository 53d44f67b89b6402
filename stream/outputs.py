"""Everything the worker produces: flips, calculation reports, dead letters, control messages.

Each send is counted in metrics. Sends made while processing a message are flushed by faust
before that message's offset is committed, so outputs are at-least-once; the fold's outbox covers
a crash between the state write and the produce (design §5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cohorts.timestamps import format_iso
from cohorts.wire import CalculationReport, ControlMessage, DeadLetter, MembershipChange
from stream.fold import Flip
from stream.metrics import WorkerMetrics

__all__ = ["Outputs"]


class Outputs:
    def __init__(self, channels: Any, metrics: WorkerMetrics, partitions: int) -> None:
        self._channels = channels
        self._metrics = metrics
        self._partitions = partitions

    async def flips(self, flips: Iterable[Flip], *, replayed: bool = False) -> None:
        topic = self._channels.membership_changed
        for flip in flips:
            status = "entered" if flip.entered else "left"
            change = MembershipChange(
                team_id=flip.team_id,
                cohort_id=flip.cohort_id,
                person_id=flip.person_id,
                status=status,
                last_updated=format_iso(flip.at_us),
                version=flip.version,
            )
            await topic.send(key=flip.person_id.encode(), value=change.to_bytes())
            self._metrics.messages_out.labels(topic.get_topic_name()).inc()
            if replayed:
                self._metrics.replayed_flips.inc()
            else:
                self._metrics.flips.labels(status).inc()

    async def dead_letter(self, reason: str, topic: str, partition: int, offset: int, key: Any, value: Any) -> None:
        letter = DeadLetter.of(reason, topic, partition, offset, value if isinstance(value, bytes) else None)
        channel = self._channels.dead_letters
        await channel.send(key=key if isinstance(key, bytes) else None, value=letter.to_bytes())
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

    async def person_input(self, key: bytes, value: bytes) -> None:
        channel = self._channels.person_inputs
        await channel.send(key=key, value=value)
        self._metrics.messages_out.labels(channel.get_topic_name()).inc()
