"""The demo population speaks PostHog's formats and is reproducible."""

from __future__ import annotations

import orjson

from cli.demo_data import DEMO_COHORTS, DemoPopulation, clickhouse_time
from cohorts.timestamps import parse_timestamp

NOW_US = 1_795_000_000_123_456


def test_clickhouse_time_is_posthogs_format_and_round_trips() -> None:
    text = clickhouse_time(NOW_US)
    assert "T" not in text
    assert parse_timestamp(text) == NOW_US


def test_same_seed_same_data_different_seed_different_data() -> None:
    first, second, other = (
        DemoPopulation(2, size=50, seed=1),
        DemoPopulation(2, size=50, seed=1),
        DemoPopulation(2, size=50, seed=2),
    )
    assert first.person_ids == second.person_ids
    assert [first.event(NOW_US) for _ in range(5)] == [second.event(NOW_US) for _ in range(5)]
    assert first.person_ids != other.person_ids


def test_events_carry_every_field_the_worker_reads_with_json_string_properties() -> None:
    population = DemoPopulation(3, size=10)
    event = population.event(NOW_US)
    assert {"uuid", "event", "properties", "timestamp", "team_id", "distinct_id", "person_id", "created_at"} <= set(
        event
    )
    assert isinstance(orjson.loads(event["properties"]), dict)
    assert event["person_id"] in population.person_ids
    assert NOW_US - 3_000_000 <= parse_timestamp(event["timestamp"]) <= NOW_US


def test_person_versions_grow_with_each_update() -> None:
    population = DemoPopulation(3, size=1)
    person_id = population.person_ids[0]
    versions = [population.person_record(person_id, NOW_US)["version"] for _ in range(3)]
    assert versions == [1, 2, 3]


def test_demo_cohorts_have_distinct_names_and_filters() -> None:
    names = [body["name"] for body in DEMO_COHORTS]
    assert len(set(names)) == len(names) >= 5
    assert all("properties" in body["filters"] for body in DEMO_COHORTS)
