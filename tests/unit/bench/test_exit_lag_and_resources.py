"""Pure helpers of the exit-lag, recalculation and resource measurements. No broker, no timing."""

from __future__ import annotations

import importlib
import os

import pytest

from bench.common import PhaseResult, metric_sum, process_rss_bytes
from bench.exit_lag import BUCKETED_ID, EXACT_ID, bucket_edge_us, exact_edge_us, exit_cohorts, lag_summary
from bench.report import ratio_lines
from cohorts.model import BehavioralLeaf, iter_leaves
from cohorts.validate import definition_from_record

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000


def test_the_exact_edge_is_one_microsecond_after_event_plus_an_hour() -> None:
    """Scenario: a -1h window holds the event while event >= now - 1 h, inclusive to the µs."""
    assert exact_edge_us(1_000) == 1_000 + HOUR_US + 1


def test_the_bucketed_edge_is_the_start_of_the_event_bucket_plus_61_minutes() -> None:
    """Scenario: "last 60 minutes" is the inclusive bucket range [B - 60, B], so an event anywhere in
    minute bucket b counts until bucket b + 61 starts; the first and last µs of a bucket agree."""
    bucket = 29_000_000
    start = bucket * MINUTE_US
    assert bucket_edge_us(start) == (bucket + 61) * MINUTE_US
    assert bucket_edge_us(start + MINUTE_US - 1) == (bucket + 61) * MINUTE_US
    assert bucket_edge_us(start + MINUTE_US) == (bucket + 62) * MINUTE_US


def test_the_exit_cohorts_are_valid_one_leaf_windows_on_the_exit_event() -> None:
    records = exit_cohorts(team_id=1)
    assert [r.id for r in records] == [EXACT_ID, BUCKETED_ID]
    leaves = [leaf for r in records for leaf in iter_leaves(definition_from_record(r).root)]
    assert all(isinstance(leaf, BehavioralLeaf) and leaf.event == "bench_exit" for leaf in leaves)
    assert leaves[0].explicit_datetime == "-1h"
    assert (leaves[1].time_value, leaves[1].time_interval) == (60, "minute")


def test_lag_summary_of_no_exits_has_no_figures() -> None:
    assert lag_summary([]) == {"p50": None, "p95": None, "max": None}
    assert lag_summary([3.0, 1.0, 2.0]) == {"p50": 2.0, "p95": 3.0, "max": 3.0}


def test_metric_sum_adds_every_label_set_of_that_metric_only() -> None:
    text = "\n".join(
        [
            "# HELP cohorts_worker_state_bytes Bytes on disk",
            "# TYPE cohorts_worker_state_bytes gauge",
            'cohorts_worker_state_bytes{partition="0"} 100.0',
            'cohorts_worker_state_bytes{partition="1"} 2.5e3',
            'cohorts_worker_state_bytes_other{partition="1"} 7.0',
        ]
    )
    assert metric_sum(text, "cohorts_worker_state_bytes") == 2_600.0
    assert metric_sum(text, "cohorts_worker_missing") is None


def test_rss_of_this_process_is_read_and_of_a_gone_one_is_none() -> None:
    assert (process_rss_bytes(os.getpid()) or 0) > 1_000_000
    assert process_rss_bytes(2**22 + 12_345) is None


def test_two_workers_are_compared_with_the_best_single_worker() -> None:
    """Scenario: one worker 1,000/s, two workers 1,500/s: 1.50 < 1.6, so the target is not met."""
    lines = ratio_lines([PhaseResult("worker", 1000, 1.0), PhaseResult("worker x2", 1000, 1000 / 1500, {"workers": 2})])
    assert "- 2 workers / 1 worker = 1.50 (target >= 1.6: NOT met)" in lines


@pytest.mark.parametrize("module", ["bench.exit_lag", "bench.recalc_worker", "bench.calc_reports"])
def test_new_benchmark_modules_import_without_starting_anything(module: str) -> None:
    assert importlib.import_module(module).__all__
