"""Outputs.flips: one PostHog-shaped message per flip, keyed by person id, counted by status."""

from __future__ import annotations

from types import SimpleNamespace

from cohorts.wire import MembershipChange
from stream.fold import Flip
from stream.metrics import WorkerMetrics
from stream.outputs import Outputs

AT_US = 1_735_725_600_000_000


class _Fast:
    """stream.fast_producer.FastProducer's sends, recorded; `runs` holds the keys of `send_run` calls."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.runs: list[bytes] = []

    def send(self, topic: str, key: bytes, value: bytes, partition: int = -1) -> None:
        self.sent.append((topic, key, value))

    def send_run(self, topic: str, key: bytes, values: list[bytes]) -> None:
        self.runs.append(key)
        self.sent.extend((topic, key, value) for value in values)


def _outputs() -> tuple[Outputs, _Fast, WorkerMetrics]:
    channels = SimpleNamespace(membership_changed=SimpleNamespace(get_topic_name=lambda: "flips"))
    fast, metrics = _Fast(), WorkerMetrics()
    return Outputs(channels, metrics, 4, fast=fast), fast, metrics


def _value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_each_flip_is_one_message_in_order_and_metrics_count_them_by_status():
    outputs, fast, metrics = _outputs()
    flips = [Flip(7, "p1", 1, True, 3, AT_US), Flip(7, "p1", 2, False, 1, AT_US), Flip(7, "p2", 1, True, 3, AT_US + 1)]
    await outputs.flips(flips)
    assert [(topic, key) for topic, key, _ in fast.sent] == [("flips", b"p1"), ("flips", b"p1"), ("flips", b"p2")]
    changes = [MembershipChange.from_bytes(value) for _, _, value in fast.sent]
    expected = [(1, "entered", 3), (2, "left", 1), (1, "entered", 3)]
    assert [(c.cohort_id, c.status, c.version) for c in changes] == expected
    assert changes[0].last_updated == changes[1].last_updated != changes[2].last_updated
    assert _value(metrics, "cohorts_worker_flips_total", status="entered") == 2
    assert _value(metrics, "cohorts_worker_flips_total", status="left") == 1
    assert _value(metrics, "cohorts_worker_messages_out_total", topic="flips") == 3


async def test_replayed_flips_are_sent_again_and_counted_apart():
    outputs, fast, metrics = _outputs()
    await outputs.flips([Flip(7, "p1", 1, True, 3, AT_US)], replayed=True)
    assert len(fast.sent) == 1
    assert _value(metrics, "cohorts_worker_replayed_flips_total") == 1
    assert _value(metrics, "cohorts_worker_flips_total", status="entered") == 0


async def test_the_flips_of_one_person_go_as_one_run_in_their_order():
    """Only a run's last message is reported (FastProducer.send_run): each person's flips must be
    one run, and keep their order, even when a tick's flips interleave persons."""
    outputs, fast, _ = _outputs()
    flips = [
        Flip(7, "p1", 1, True, 3, AT_US),
        Flip(7, "p2", 1, True, 3, AT_US),
        Flip(7, "p1", 2, True, 1, AT_US),
        Flip(7, "p1", 1, False, 3, AT_US + 1),
    ]
    await outputs.flips(flips)
    assert fast.runs == [b"p1", b"p2"]
    sent = [(key, MembershipChange.from_bytes(value)) for _, key, value in fast.sent]
    assert [(key, c.cohort_id, c.status) for key, c in sent] == [
        (b"p1", 1, "entered"),
        (b"p1", 2, "entered"),
        (b"p1", 1, "left"),
        (b"p2", 1, "entered"),
    ]
