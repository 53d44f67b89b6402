"""Scenario 6: hostile input on every topic the worker reads, mixed with good input.

Scenario: thousands of bad messages (tests/reliability/hostile.py: malformed JSON, invalid UTF-8,
wrong types, missing ids, enormous and deeply nested properties, future timestamps, huge keys,
null values) go to `clickhouse_events_json`, `clickhouse_person`, `clickhouse_person_distinct_id`,
`cohort_control` and `cohort_catalog`, shuffled among a seeded workload's good messages and some
odd but valid events (big properties, unicode, huge keys, ISO timestamps, object properties).

The worker must not crash; every bad message must appear on `cohort_dead_letters` exactly once, at
its own (topic, partition, offset), with the reason it was generated for, and no good one may; every
good message must be applied: the last flip per (cohort, person) equals the reference evaluator.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from cohorts.topics import Topics
from cohorts.wire import DeadLetter
from infra.kafka_admin import admin_client
from tests.integration.worker_harness import TopicReader, start_worker
from tests.reliability.harness import (
    NOW,
    Size,
    build_workload,
    producer,
    record_figures,
    settle_and_compare,
    wait_calculated,
)
from tests.reliability.hostile import Hostile, event_message, hostile_messages, odd_but_valid_events

pytestmark = [pytest.mark.kafka, pytest.mark.reliability]

PARTITIONS = 3
Position = tuple[str, int, int]


def _allow_big_messages(bootstrap: str, topics: list[str]) -> None:
    """PostHog's input topics may carry messages above the worker's 1 MiB limit; let ours too."""
    entry = ConfigEntry("max.message.bytes", str(4 * 1024 * 1024), incremental_operation=AlterConfigOpType.SET)
    resources = [ConfigResource(ResourceType.TOPIC, name, incremental_configs=[entry]) for name in topics]
    admin = admin_client(bootstrap)  # kept alive until the futures resolve
    for future in admin.incremental_alter_configs(resources).values():
        future.result(30)


def _produce(bootstrap: str, items: list[tuple[str, bytes | None, Any, int | None]]) -> list[Position]:
    """Produce in order; returns each message's (topic, partition, offset)."""
    out = producer(bootstrap)
    positions: list[Position | None] = [None] * len(items)
    errors: list[str] = []

    def delivered(index: int):
        def callback(error, message) -> None:
            if error is not None:
                errors.append(str(error))
            else:
                positions[index] = (message.topic(), message.partition(), message.offset())

        return callback

    for index, (topic, key, value, partition) in enumerate(items):
        extra = {} if partition is None else {"partition": partition}
        out.produce(topic, key=key, value=value, on_delivery=delivered(index), **extra)
        out.poll(0)
    assert out.flush(120) == 0
    assert not errors, errors[:5]
    assert all(p is not None for p in positions)
    return positions  # type: ignore[return-value]


def _metric(worker, name: str) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).text
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1 :].rsplit("} ", 1)
            found[labels] = float(value)
    return found


def test_hostile_input_on_every_topic_is_dead_lettered_and_good_input_still_applied(
    make_topics, make_settings, kafka_bootstrap: str, tmp_path: Path
):
    size = Size.from_env(events=1_500, persons=120, stream_s=0, seed=606)
    per_topic = int(os.environ.get("RELIABILITY_BAD_PER_TOPIC", 400))
    rng = random.Random(size.seed)
    workload = build_workload(size)
    person_ids = sorted(
        {p.person_id for p in workload.scenario.persons} | {e.person_id for e in workload.scenario.events}
    )
    odd = odd_but_valid_events(rng, workload.team_id, person_ids, 40)
    workload.scenario.events += odd
    odd_messages = [
        (b"H" * 200_000 if n % 4 == 0 else f"odd-{n}".encode(), event_message(event, n)) for n, event in enumerate(odd)
    ]
    topics: Topics = make_topics(PARTITIONS)
    _allow_big_messages(kafka_bootstrap, [topics.events, topics.persons, topics.distinct_ids])
    bad = list(hostile_messages(rng, topics, workload.team_id, person_ids, per_topic))
    good_distinct_ids = [
        (f"d-{p}".encode(), {"team_id": workload.team_id, "distinct_id": f"d-{p}", "person_id": p, "version": 1})
        for p in person_ids
    ]
    worker = start_worker(make_settings(topics, tmp_path / "state"), tmp_path, now_us=NOW, tick_interval_s=1.0)
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    dead = TopicReader(kafka_bootstrap, topics.dead_letters)
    try:
        # Catalog first (state is kept only from the moment a cohort needs it), bad records among the good.
        catalog_bad = [b for b in bad if b.topic == topics.catalog]
        catalog_items = [(topics.catalog, k, v, None, None) for k, v in workload.catalog]
        catalog_items += [(b.topic, b.key, b.value, b.partition, b) for b in catalog_bad]
        rng.shuffle(catalog_items)
        # Then everything else, shuffled together.
        items = [(topics.persons, k, v, None, None) for k, v in workload.persons]
        items += [(topics.events, k, v, None, None) for k, v in workload.events + odd_messages]
        items += [(topics.control, k, v, None, None) for k, v in workload.statics]
        items += [(topics.distinct_ids, k, v, None, None) for k, v in good_distinct_ids]
        items += [(b.topic, b.key, b.value, b.partition, b) for b in bad if b.topic != topics.catalog]
        rng.shuffle(items)

        expected: dict[Position, str] = {}
        for batch in (catalog_items, items):
            encoded = [(t, k, _encode(v), p) for t, k, v, p, _ in batch]
            for position, (*_, tag) in zip(_produce(kafka_bootstrap, encoded), batch, strict=True):
                if isinstance(tag, Hostile):
                    expected[position] = tag.reason
            if batch is catalog_items:
                wait_calculated(reports, workload, PARTITIONS)

        figures = settle_and_compare(kafka_bootstrap, topics, workload, flips, lambda: [worker], advances_us=())
        dead.wait_for(lambda ms: len(ms) >= len(expected), 60)
        dead.poll(1.0)
        got: dict[Position, str] = {}
        duplicates = 0
        for _, value in dead.messages:
            letter = DeadLetter.from_bytes(value or b"")
            position = (letter.source_topic, letter.source_partition, letter.source_offset)
            duplicates += position in got
            got[position] = letter.reason
        distinct_ids_in = _metric(worker, "cohorts_worker_messages_in_total").get(f'topic="{topics.distinct_ids}"')
        assert worker.process.poll() is None, worker.log()[-4000:]
        log = worker.log()
    finally:
        for reader in (flips, reports, dead):
            reader.close()
        worker.stop()

    wrong_reason = {p: (expected[p], got[p]) for p in expected.keys() & got.keys() if expected[p] != got[p]}
    assert not wrong_reason, f"{len(wrong_reason)} with another reason, e.g. {sorted(wrong_reason.items())[:8]}"
    missing = {p: expected[p] for p in expected.keys() - got.keys()}
    assert not missing, f"{len(missing)} bad messages not dead-lettered, e.g. {sorted(missing.items())[:8]}"
    extra = {p: got[p] for p in got.keys() - expected.keys()}
    assert not extra, f"{len(extra)} good messages dead-lettered, e.g. {sorted(extra.items())[:8]}"
    assert duplicates == 0
    assert distinct_ids_in == len(good_distinct_ids) + sum(b.topic == topics.distinct_ids for b in bad)
    assert "Traceback" not in log and "crashed" not in log.lower(), log[-4000:]

    per_reason = Counter(f"{topic.removeprefix(topics.prefix)}: {reason}" for (topic, _, _), reason in got.items())
    record_figures(
        "hostile-input",
        {
            "seed": size.seed,
            "bad_messages": len(expected),
            "dead_letters": len(got),
            "good_events": len(workload.events) + len(odd_messages),
            "good_persons": len(workload.persons),
            "good_statics": len(workload.statics),
            "good_distinct_ids": len(good_distinct_ids),
            "good_cohorts": len(workload.catalog),
            "mismatches": 0,
            "crashes": 0,
            "per_reason": dict(sorted(per_reason.items())),
            **figures,
        },
    )


def _encode(value: Any) -> bytes | None:
    return orjson.dumps(value) if isinstance(value, dict) else value
