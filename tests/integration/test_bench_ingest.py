"""Benchmark 1's worker phase on a real broker, at a tiny size: both ways of meeting the cohorts
(calculated while ingesting, calculated before ingest reads anything) end with the same members,
and `calculated_first` really calculates before the first input. No timing is asserted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench.common import Dataset
from bench.ingest import _edge_timestamps_ms, _last_finished_ms, benchmark_cohorts, measure_worker
from bench.preload import new_prefix, preload
from tests.integration.worker_harness import TopicReader, members

COHORTS = 20


def _members(dataset: Dataset) -> dict[int, set[str]]:
    """cohort id -> persons whose last flip is `entered`."""
    reader = TopicReader(dataset.bootstrap, dataset.topics.membership_changed)
    try:
        return members(reader.read_to_end())
    finally:
        reader.close()


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
    versions = [(record.id, record.version) for record in benchmark_cohorts(before.team_id, COHORTS)]
    last_finished_ms = _last_finished_ms(before, versions, timeout_s=30)
    assert last_finished_ms is not None
    first_input_ms = min(_edge_timestamps_ms(kafka_bootstrap, before.topics.person_inputs, last=False))
    assert last_finished_ms <= first_input_ms
    found = _members(before)
    assert found == _members(while_ingesting)
    assert sum(len(persons) for persons in found.values()) > 400  # persons are members of several cohorts
