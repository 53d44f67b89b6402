"""Microbenchmark: the worker's per-input bookkeeping outside the fold, without Kafka.

    .venv/bin/python -m bench.output_micro

- Metrics: one counter increment and one histogram observation through prometheus_client against
  `stream.tallies` (what the worker uses since 2026-11-27), µs per call.
- Flips: `stream.outputs.Outputs.flips` for the flips of one new person (`--flips`, 21 as in
  benchmark 1), with a producer that only takes the runs, µs per flip: building the messages
  and counting them, before librdkafka (`bench.produce_micro` measures the sends).
"""

from __future__ import annotations

import argparse
import os
import timeit
from collections.abc import Callable
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, Histogram

from stream.fold import Flip
from stream.metrics import FOLD_SECONDS_BUCKETS, WorkerMetrics
from stream.outputs import Outputs
from stream.tallies import TallyCounter, TallyHistogram

_PERSON = "0a1b2c3d-1111-2222-3333-444455556666"
_AT_US = 1_748_736_000_000_000


class _Runs:
    """A FastProducer that keeps nothing: Outputs.flips's own cost is what is timed."""

    def send_run(self, topic: str, key: bytes, values: list[bytes]) -> None:
        pass


def _best_us(call: Callable[[], object], number: int, per: int = 1) -> float:
    """The best of five rounds, µs per unit (`per` units a call)."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number / per * 1e6


def metric_us(number: int) -> dict[str, float]:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("c", "c", ["outcome"], registry=theirs).labels("applied")
    histogram = Histogram("h", "h", buckets=FOLD_SECONDS_BUCKETS, registry=theirs)
    tally = TallyCounter("c", "c", ["outcome"], registry=ours).labels("applied")
    tally_histogram = TallyHistogram("h", "h", buckets=FOLD_SECONDS_BUCKETS, registry=ours)
    return {
        "prometheus_client Counter.inc": _best_us(counter.inc, number),
        "stream.tallies Tally.inc": _best_us(tally.inc, number),
        "prometheus_client Histogram.observe": _best_us(lambda: histogram.observe(0.0003), number),
        "stream.tallies TallyHistogram.observe": _best_us(lambda: tally_histogram.observe(0.0003), number),
    }


def flips_us(number: int, flips_per_input: int) -> float:
    channels = SimpleNamespace(membership_changed=SimpleNamespace(get_topic_name=lambda: "flips"))
    outputs = Outputs(channels, WorkerMetrics(), 16, fast=_Runs())  # type: ignore[arg-type]
    flips = [Flip(1, _PERSON, cohort, cohort % 3 != 0, 1, _AT_US) for cohort in range(1, flips_per_input + 1)]

    def one_input() -> None:
        coroutine = outputs.flips(flips)
        try:
            coroutine.send(None)  # never awaits with a FastProducer: it finishes in one step
        except StopIteration:
            return
        raise AssertionError("Outputs.flips awaited")

    return _best_us(one_input, number, per=flips_per_input)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per round of each metric update")
    parser.add_argument("--inputs", type=int, default=20_000, help="inputs per round of Outputs.flips")
    parser.add_argument("--flips", type=int, default=21, help="flips per input")
    args = parser.parse_args(argv)
    for name, value in metric_us(args.calls).items():
        print(f"{name:<40}{value:6.2f} µs per call")
    per_flip = flips_us(args.inputs, args.flips)
    print(f"{f'Outputs.flips, {args.flips} flips an input':<40}{per_flip:6.2f} µs per flip")
    print(f"best of 5 rounds; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
