"""The API read benchmark's data layout, HTTP framing and arithmetic. No broker, no timing."""

from __future__ import annotations

import pytest

from bench.api_load import Scenario, ScenarioResult, latency_summary, scenario_plan, verdicts
from bench.api_load_client import parse_head
from bench.api_load_data import ApiDataset, members_of, person_id


def test_members_of_a_cohort_are_distinct_wrap_around_and_need_enough_persons() -> None:
    members = list(members_of(3, 10, 25))
    assert len(set(m % 25 for m in members)) == 10
    assert members[0] == (3 * 7_919) % 25
    assert len({m % 7 for m in members_of(0, 7, 7)}) == 7  # the edge: every person
    with pytest.raises(ValueError):
        members_of(0, 8, 7)
    assert person_id(5) == person_id(5) != person_id(6)


def test_parse_head_reads_status_and_framing() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n")
    assert (head.status, head.content_length, head.chunked, head.close) == (200, 12, False, False)
    chunked = parse_head(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    assert (chunked.status, chunked.content_length, chunked.chunked, chunked.close) == (404, None, True, True)
    with pytest.raises(ValueError):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_latency_summary_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert latency_summary(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


def test_scenario_plan_visits_every_cohort_and_asks_for_the_last_full_page() -> None:
    plan = scenario_plan(9, ApiDataset(team_id=9, cohorts=250, members=250_000, persons=50_000))
    by_name = {s.name: s for s in plan}
    retrieve = by_name["retrieve"].paths
    assert sorted(retrieve) == sorted(f"/api/projects/9/cohorts/{i}/" for i in range(1, 251))
    assert "list, offset 150" in by_name
    deep = by_name["persons, offset 900 (last full page)"].paths
    assert all(p.endswith("/persons/?limit=100&offset=900") for p in deep) and len(deep) == 250


def test_a_scenario_with_any_non_200_answer_gets_no_verdict() -> None:
    def result(statuses: dict[str, int], p99: float) -> ScenarioResult:
        summary = {"p50": 1.0, "p95": 2.0, "p99": p99, "max": p99}
        return ScenarioResult(Scenario("retrieve", "retrieve", ["/"]), 10, 1.0, statuses, summary, 0.5, "", "")

    lines = verdicts([result({"200": 10}, 19.9), result({"200": 10}, 20.0), result({"200": 9, "503": 1}, 1.0)])
    assert lines[0].endswith(": met") and lines[1].endswith("NOT met")
    assert lines[2].startswith("- retrieve: no figure")
