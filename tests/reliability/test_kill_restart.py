"""Scenario 1: a worker SIGKILLed three times while events stream in, restarted on the same state.

Scenario: a seeded catalog (random cohorts plus exact-count `eq` cohorts) is calculated; then persons,
events and static adds stream in at a steady pace. At random moments the worker is killed with
SIGKILL (no flush, no commit, no shutdown code) and restarted on its RocksDB directory, three times.
Once everything is consumed, the last flip per (cohort, person) must equal the reference evaluator
at NOW, and again after the clock moves past window edges (ticks re-evaluate held state, so an event
counted twice or lost in a replay shows there as well).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cohorts.settings import Settings
from cohorts.topics import Topics
from tests.integration.worker_harness import TopicReader, WorkerProcess, produce, start_worker
from tests.reliability.harness import (
    NOW,
    Size,
    Streamer,
    build_workload,
    kill,
    record_figures,
    seeded,
    settle_and_compare,
    wait_calculated,
)

pytestmark = [pytest.mark.kafka, pytest.mark.reliability]

PARTITIONS = 4
KILLS = int(os.environ.get("RELIABILITY_KILLS", 3))


def test_sigkill_three_times_while_streaming_loses_and_doubles_nothing(
    make_topics, make_settings, kafka_bootstrap: str, tmp_path: Path
):
    size = Size.from_env(events=3_000, persons=200, stream_s=12, seed=101)
    workload = build_workload(size)
    topics: Topics = make_topics(PARTITIONS)
    settings: Settings = make_settings(topics, tmp_path / "state")
    rng = seeded(size, 1)
    worker = start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0)
    workers: list[WorkerProcess] = [worker]
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    streamer = Streamer(kafka_bootstrap, topics, workload, size.stream_s)
    killed_at: list[int] = []
    try:
        produce(kafka_bootstrap, topics.catalog, workload.catalog)
        wait_calculated(reports, workload, PARTITIONS)
        streamer.start()
        for n in range(KILLS):
            # A random moment inside the next stretch of the stream.
            killed_at.append(streamer.wait_progress((n + rng.uniform(0.2, 0.9)) / (KILLS + 1)))
            kill(workers[-1])
            time.sleep(rng.uniform(0.5, 1.5))  # inputs keep arriving while no worker runs
            streamer.pause()  # then wait for the restart, so the next kill is mid-stream too
            workers.append(start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0))
            streamer.resume()
        streamer.finish()
        figures = settle_and_compare(kafka_bootstrap, topics, workload, flips, lambda: workers[-1:])
    finally:
        flips.close()
        reports.close()
        workers[-1].stop()
    assert all(0 < at < streamer.total for at in killed_at), f"kills not mid-stream: {killed_at} of {streamer.total}"
    record_figures(
        "kill-restart",
        {
            "seed": size.seed,
            "events": len(workload.events),
            "persons": len(workload.persons),
            "statics": len(workload.statics),
            "cohorts": len(workload.catalog),
            "kills": len(killed_at),
            "restarts": len(workers) - 1,
            "killed_after_messages": killed_at,
            "mismatches": 0,
            **figures,
        },
    )
