"""Scenario 3: a worker's state directory is wiped; it rebuilds its partitions from the changelog.

Scenario: one worker; while inputs stream in it is SIGKILLed and restarted on its own RocksDB (so
some inputs are replayed against state that already holds them), then SIGKILLed again and its
whole state directory deleted before it restarts. Everything it knew must come back from the person
table's changelog: the last flip per (cohort, person) equals the reference evaluator at NOW, and
after the clock passes window edges, which re-evaluates the rebuilt records (a count lost in the
rebuild, or an input the changelog never received, shows there).
"""

from __future__ import annotations

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
    wipe,
)

pytestmark = [pytest.mark.kafka, pytest.mark.reliability]

PARTITIONS = 4


def test_a_wiped_worker_rebuilds_its_partitions_from_the_changelog(
    make_topics, make_settings, kafka_bootstrap: str, tmp_path: Path
):
    size = Size.from_env(events=3_000, persons=200, stream_s=16, seed=303)
    workload = build_workload(size)
    topics: Topics = make_topics(PARTITIONS)
    settings: Settings = make_settings(topics, tmp_path / "state")
    rng = seeded(size, 3)
    workers: list[WorkerProcess] = [start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0)]
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    streamer = Streamer(kafka_bootstrap, topics, workload, size.stream_s)
    moments: dict[str, int] = {}
    try:
        produce(kafka_bootstrap, topics.catalog, workload.catalog)
        wait_calculated(reports, workload, PARTITIONS)
        streamer.start()
        moments["killed_after_messages"] = streamer.wait_progress(rng.uniform(0.15, 0.35))
        kill(workers[-1])
        streamer.pause()
        workers.append(start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0))
        streamer.resume()
        moments["wiped_after_messages"] = streamer.wait_progress(rng.uniform(0.45, 0.7))
        kill(workers[-1])
        wipe(settings.data_dir)
        streamer.pause()
        workers.append(start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0))
        streamer.resume()
        streamer.finish()
        figures = settle_and_compare(kafka_bootstrap, topics, workload, flips, lambda: workers[-1:])
    finally:
        flips.close()
        reports.close()
        workers[-1].stop()
    assert "Restoring state from changelog" in workers[-1].log()
    record_figures(
        "state-wipe",
        {
            "seed": size.seed,
            "events": len(workload.events),
            "persons": len(workload.persons),
            "statics": len(workload.statics),
            "cohorts": len(workload.catalog),
            "kills": 2,
            "wipes": 1,
            **moments,
            "mismatches": 0,
            **figures,
        },
    )
