"""Benchmark 1's worker phase on a real broker, at a tiny size: both ways of meeting the cohorts
(calculated while ingesting, calculated before ingest reads anything) end with the same members,
and `calculated_first` really calculates before the first input. No timing is asserted."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from bench.calc_reports import FinishedReports
from bench.common import Dataset
from bench.ingest import benchmark_cohorts, measure_worker
from bench.preload import new_prefix, preload

COHORTS = 20


def _read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    """(CreateTime ms, value) of every message of `topic`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        left, messages = sum(ends.values()), []
        while left:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            messages.append((message.timestamp()[1], message.value()))
            left -= 1
        return messages
    finally:
        consumer.close()


def _members(dataset: Dataset) -> set[tuple[int, str]]:
    """(cohort, person) pairs whose last flip is `entered`."""
    last: dict[tuple[int, str], str] = {}
    for _, value in _read_all(dataset.bootstrap, dataset.topics.membership_changed):
        flip = orjson.loads(value)
        last[(flip["cohort_id"], flip["person_id"])] = flip["status"]
    return {pair for pair, status in last.items() if status == "entered"}


def test_calculating_first_starts_ingest_after_every_cohort_is_calculated_and_ends_with_the_same_members(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Scenario: the same 1,200 events over 400 persons, 20 cohorts, one worker each way."""
    while_ingesting = preload(
        Dataset(kafka_bootstrap, new_prefix(), partitions=4, events=1_200, persons=400), progress=False
    )
    before = preload(replace(while_ingesting, prefix=new_prefix(), produce_seconds=None), progress=False)

    usual = measure_worker(
        while_ingesting, tmp_path / "usual", cohorts=COHORTS, timeout_s=180, quiet_s=2, report_calculated=True
    )
    first = measure_worker(before, tmp_path / "first", cohorts=COHORTS, timeout_s=180, quiet_s=2, calculated_first=True)

    assert isinstance(usual.detail["calculated_s"], float)
    assert str(first.detail["calculated_first"]).endswith(" s before")
    reports = FinishedReports(kafka_bootstrap, before.topics.calculation_reports)
    try:
        versions = [(record.id, record.version) for record in benchmark_cohorts(before.team_id, COHORTS)]
        last_finished_ms = max(f.create_ms for f in reports.wait_finished(versions, before.partitions, 30))
    finally:
        reports.close()
    first_input_ms = min(stamp for stamp, _ in _read_all(kafka_bootstrap, before.topics.person_inputs))
    assert last_finished_ms <= first_input_ms
    members = _members(before)
    assert members == _members(while_ingesting)
    assert len(members) > 400  # persons are members of several cohorts
