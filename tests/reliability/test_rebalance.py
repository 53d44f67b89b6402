"""Scenario 2: two workers; one is SIGKILLed and another joins while inputs stream in.

Scenario: workers A and B share 4 partitions (separate state directories). While persons, events
and static adds stream in, A is killed with SIGKILL, so B takes A's partitions over after the
session timeout, restoring them from the person table's changelog; then a new worker C joins, so
partitions move again, from B to C. Once everything is consumed, the last flip per (cohort,
person) equals the reference evaluator, at NOW and after the clock passes window edges.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

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


def _folded(worker: WorkerProcess, topic: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).text
    prefix = f'cohorts_worker_messages_in_total{{topic="{topic}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_a_worker_killed_and_a_worker_added_mid_stream_lose_and_double_nothing(
    make_topics, make_settings, kafka_bootstrap: str, tmp_path: Path
):
    size = Size.from_env(events=3_000, persons=200, stream_s=20, seed=202)
    workload = build_workload(size)
    topics: Topics = make_topics(PARTITIONS)
    rng = seeded(size, 2)

    def worker(name: str) -> WorkerProcess:
        (tmp_path / name).mkdir()
        settings = make_settings(topics, tmp_path / name / "state")
        return start_worker(settings, tmp_path / name, now_us=NOW, tick_interval_s=1.0)

    a, b = worker("a"), worker("b")
    live: list[WorkerProcess] = [a, b]
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    streamer = Streamer(kafka_bootstrap, topics, workload, size.stream_s)
    moments: dict[str, int] = {}
    try:
        produce(kafka_bootstrap, topics.catalog, workload.catalog)
        wait_calculated(reports, workload, PARTITIONS)
        streamer.start()
        moments["killed_after_messages"] = streamer.wait_progress(rng.uniform(0.15, 0.35))
        kill(a)  # B takes A's partitions over once A's session times out
        live.remove(a)
        moments["added_after_messages"] = streamer.wait_progress(rng.uniform(0.45, 0.6))
        streamer.pause()  # C joins mid-stream: hold inputs back until it is up
        live.append(worker("c"))
        streamer.resume()
        streamer.finish()
        figures = settle_and_compare(kafka_bootstrap, topics, workload, flips, lambda: live)
        folded = {name: _folded(w, topics.person_inputs) for name, w in zip("bc", live, strict=True)}
    finally:
        flips.close()
        reports.close()
        for w in live:
            w.stop()
    assert all(count > 0 for count in folded.values()), f"both survivors should hold partitions: {folded}"
    record_figures(
        "rebalance",
        {
            "seed": size.seed,
            "events": len(workload.events),
            "persons": len(workload.persons),
            "statics": len(workload.statics),
            "cohorts": len(workload.catalog),
            "kills": 1,
            "workers_added": 1,
            **moments,
            "folded_by_survivors": folded,
            "mismatches": 0,
            **figures,
        },
    )
