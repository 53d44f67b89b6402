"""Baseline 1, the framework's own ceiling: a faust agent that only iterates the events topic.

One agent reads every preloaded event (raw bytes, earliest offset, its own consumer group) and does
nothing with it but count; the time from its first event to the last is faust + aiokafka's ceiling
on this machine. Run by `bench.run_ingest`; by hand:

    python -m bench.baseline_noop --manifest dataset.json --result noop.json --app-id g1 --datadir /tmp/x
"""

from __future__ import annotations

import faust

from bench.baseline_app import Probe, baseline_main, events_topic
from bench.common import Dataset

__all__ = ["install"]


def install(app: faust.App, dataset: Dataset, probe: Probe) -> None:
    """The no-op agent: count, note the first event, finish at the last."""

    @app.agent(events_topic(app, dataset), name="noop")
    async def noop(stream: faust.StreamT) -> None:
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 1:
                probe.first()
            if seen == probe.target:
                probe.last()
                probe.finish()


if __name__ == "__main__":
    baseline_main("noop", install)
