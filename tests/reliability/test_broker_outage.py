"""Scenario 4: the broker stops mid-stream and comes back; the worker resumes by itself.

Scenario: this test runs its own single-node broker (cli/local_kafka.py), because it stops it. While
inputs stream in, the broker is stopped for `RELIABILITY_OUTAGE_S` seconds (12 in CI, 30 on demand)
and started again on the same data directory and port. The worker process is never touched: it
must survive the outage, reconnect, and finish the work, so that the last flip per (cohort, person)
equals the reference evaluator at NOW and after the clock passes window edges.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from cli.local_kafka import LocalKafka, free_port
from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics
from tests.integration.worker_harness import TopicReader, produce, start_worker
from tests.reliability.harness import (
    NOW,
    Size,
    Streamer,
    build_workload,
    record_figures,
    seeded,
    settle_and_compare,
    wait_calculated,
)

pytestmark = [pytest.mark.kafka, pytest.mark.reliability]

PARTITIONS = 3


def test_the_worker_rides_out_a_broker_outage_and_loses_nothing(tmp_path: Path):
    size = Size.from_env(events=2_000, persons=150, stream_s=14, seed=404)
    outage_s = float(os.environ.get("RELIABILITY_OUTAGE_S", 12))
    workload = build_workload(size)
    rng = seeded(size, 4)
    broker = LocalKafka(tmp_path / "kafka", port=free_port())
    broker.start()
    worker = flips = reports = None
    try:
        bootstrap = broker.bootstrap
        topics = Topics(prefix=f"o{uuid.uuid4().hex[:8]}_", partitions=PARTITIONS)
        ensure_topics(bootstrap, topics.specs())
        settings = Settings(
            kafka_bootstrap=bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS, data_dir=tmp_path / "state"
        )
        worker = start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0)
        flips = TopicReader(bootstrap, topics.membership_changed)
        reports = TopicReader(bootstrap, topics.calculation_reports)
        produce(bootstrap, topics.catalog, workload.catalog)
        wait_calculated(reports, workload, PARTITIONS)
        streamer = Streamer(bootstrap, topics, workload, size.stream_s)
        streamer.start()
        stopped_after = streamer.wait_progress(rng.uniform(0.2, 0.5))
        stopping = time.monotonic()
        assert broker.stop(), "the broker should have been running"
        down = time.monotonic()
        time.sleep(outage_s)
        assert worker.process.poll() is None, f"worker died during the outage:\n{worker.log()[-4000:]}"
        broker.start()
        timings = {
            "broker_stop_s": round(down - stopping, 1),
            "broker_down_s": round(time.monotonic() - down, 1),  # the sleep plus the restart until it answers
        }
        streamer.finish()
        figures = settle_and_compare(bootstrap, topics, workload, flips, lambda: [worker])
        assert worker.process.poll() is None
    finally:
        for reader in (flips, reports):
            if reader is not None:
                reader.close()
        if worker is not None:
            worker.stop()
        broker.stop()
    record_figures(
        "broker-outage",
        {
            "seed": size.seed,
            "events": len(workload.events),
            "persons": len(workload.persons),
            "statics": len(workload.statics),
            "cohorts": len(workload.catalog),
            **timings,
            "stopped_after_messages": stopped_after,
            "worker_restarts": 0,
            "mismatches": 0,
            **figures,
        },
    )
