"""The ingest benchmark's harness: deterministic data, valid cohorts, honest results. No broker, no timing."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import orjson
import pytest

from bench import output_micro
from bench.common import Dataset, PhaseError, PhaseResult, persons_then_events, process_cpu_s, read_result, run_child
from bench.ingest import benchmark_cohorts
from bench.report import ratio_lines, results_table
from cohorts.model import BehavioralLeaf, PersonLeaf, iter_leaves
from cohorts.timestamps import parse_timestamp
from cohorts.validate import definition_from_record


def small(**overrides: object) -> Dataset:
    values: dict[str, object] = {"bootstrap": "127.0.0.1:1", "prefix": "b_", "events": 50, "persons": 20}
    values.update(overrides)
    return Dataset(**values)


def encoded(dataset: Dataset) -> list[tuple[str, str, bytes]]:
    return [(topic, key, orjson.dumps(value)) for topic, key, value in persons_then_events(dataset)]


def test_the_same_manifest_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert encoded(small()) == encoded(small())
    assert encoded(small()) != encoded(small(seed=8))


def test_person_records_come_first_then_every_event_in_time_order_ending_at_base() -> None:
    """Scenario: 20 persons, 50 events over the span; persons go to the person topic keyed by id,
    events to the events topic keyed by uuid, created_at never goes backwards and ends before base_us."""
    dataset = small()
    messages = list(persons_then_events(dataset))
    topics = dataset.topics
    assert [topic for topic, _, _ in messages] == [topics.persons] * 20 + [topics.events] * 50
    assert all(key == value["id"] for _, key, value in messages[:20])
    events = [value for _, _, value in messages[20:]]
    assert all(key == value["uuid"] for (_, key, value) in messages[20:])
    created = [parse_timestamp(e["created_at"]) for e in events]
    assert created == sorted(created)
    assert created[0] == dataset.base_us - dataset.span_us
    assert created[-1] < dataset.base_us
    assert {e["person_id"] for e in events} <= {value["id"] for _, _, value in messages[:20]}


def test_a_manifest_round_trips_through_its_file(tmp_path: Path) -> None:
    dataset = small(produce_seconds=1.5)
    dataset.save(tmp_path / "d.json")
    assert Dataset.load(tmp_path / "d.json") == dataset


def test_benchmark_cohorts_are_a_hundred_distinct_valid_definitions_of_mixed_kinds() -> None:
    records = benchmark_cohorts(team_id=3)
    assert [r.id for r in records] == list(range(1, 101))
    assert len({orjson.dumps(r.filters, option=orjson.OPT_SORT_KEYS) for r in records}) == 100
    definitions = [definition_from_record(r) for r in records]
    assert all(d.root is not None and d.team_id == 3 for d in definitions)
    leaves = [leaf for d in definitions for leaf in iter_leaves(d.root)]
    assert any(isinstance(leaf, PersonLeaf) for leaf in leaves)
    kinds = {leaf.kind for leaf in leaves if isinstance(leaf, BehavioralLeaf)}
    assert {"performed_event", "performed_event_multiple", "performed_event_first_time"} <= kinds


def test_asking_for_more_distinct_cohorts_than_there_are_is_refused() -> None:
    with pytest.raises(ValueError, match="distinct"):
        benchmark_cohorts(team_id=1, count=10_000)


@pytest.mark.parametrize(
    "module", ["bench.baseline_noop", "bench.baseline_counter", "bench.run_ingest", "bench.produce_micro"]
)
def test_benchmark_entry_points_import_without_starting_anything(module: str) -> None:
    loaded = importlib.import_module(module)
    assert callable(getattr(loaded, "install", None) or loaded.main)


def test_the_output_microbenchmark_runs_every_comparison_in_one_step_per_input(capsys) -> None:
    """bench.output_micro raises if Outputs.flips ever awaits (its timing would then be wrong)."""
    output_micro.main(["--calls", "10", "--inputs", "10", "--flips", "3"])
    printed = capsys.readouterr().out
    assert printed.count("µs per call") == 4
    assert "Outputs.flips, 3 flips an input" in printed


def test_ratios_compare_the_best_run_of_each_phase_and_name_unmet_targets() -> None:
    results = [
        PhaseResult("noop", 1000, 0.1),  # 10,000/s
        PhaseResult("noop", 1000, 0.2),
        PhaseResult("counter", 1000, 1.0),  # 1,000/s
        PhaseResult("worker", 1000, 0.2, {"cpu_s": 0.25}),  # 5,000/s
    ]
    lines = ratio_lines(results)
    assert "- counter / no-op = 0.10" in lines
    assert "- worker / no-op = 0.50 (target >= 0.6: NOT met)" in lines
    assert "- worker / counter = 5.00 (target >= 3: met)" in lines
    assert "| worker |  | 1,000 | 0.20 | 5,000 | 4,000 |" in results_table(results)


def test_no_worker_result_means_no_worker_ratio() -> None:
    lines = ratio_lines([PhaseResult("noop", 10, 1.0), PhaseResult("counter", 5, 1.0)])
    assert lines == ["- counter / no-op = 0.50"]


def test_a_child_that_writes_its_result_is_read_back(tmp_path: Path) -> None:
    result_path = tmp_path / "r.json"
    script = (
        "import sys; from bench.common import PhaseResult, write_result; from pathlib import Path; "
        f"write_result(Path({str(result_path)!r}), PhaseResult('x', 7, 0.5))"
    )
    got = run_child("x", ["-c", script], result_path=result_path, log_path=tmp_path / "x.log", timeout_s=60)
    assert got == PhaseResult("x", 7, 0.5)
    assert read_result(result_path).rate == 14


def test_a_child_past_its_deadline_fails_without_a_number(tmp_path: Path) -> None:
    with pytest.raises(PhaseError, match="did not finish within"):
        run_child(
            "sleeper",
            ["-c", "import time; time.sleep(60)"],
            result_path=tmp_path / "r.json",
            log_path=tmp_path / "s.log",
            timeout_s=0.5,
        )
    assert not (tmp_path / "r.json").exists()


def test_a_child_that_exits_without_a_result_fails_with_its_log_tail(tmp_path: Path) -> None:
    with pytest.raises(PhaseError, match="boom"):
        run_child(
            "crasher",
            ["-c", "raise SystemExit('boom')"],
            result_path=tmp_path / "r.json",
            log_path=tmp_path / "c.log",
            timeout_s=60,
        )


def test_cpu_time_is_read_for_a_live_process_and_none_for_a_missing_one() -> None:
    assert (process_cpu_s(os.getpid()) or 0) > 0
    assert process_cpu_s(2**31 - 1) is None
