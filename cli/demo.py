"""`cohorts demo`: a continuous, realistic event and person stream plus a handful of cohorts.

So a newcomer sees counts move: it creates the demo cohorts through the api (once; found again by name),
seeds person records and distinct ids for the whole population, then streams events at a steady rate
with occasional person updates until interrupted.
"""

from __future__ import annotations

import time

import httpx
import typer

from cli.demo_data import DEMO_COHORTS, DemoPopulation
from cli.errors import CliError
from cli.producer import json_producer, produce_json
from cohorts.settings import Settings
from cohorts.topics import Topics

__all__ = ["create_demo_cohorts", "stream_demo"]


def create_demo_cohorts(api_url: str, project_id: int, key: str) -> list[int]:
    """POST each demo cohort unless one with its name exists; returns their ids."""
    headers = {"Authorization": f"Bearer {key}"}
    base = f"{api_url}/api/projects/{project_id}/cohorts/"
    try:
        existing = httpx.get(base, params={"limit": 1000}, headers=headers, timeout=10).json()["results"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise CliError(f"cannot list cohorts at {base}: {exc}") from exc
    by_name = {row["name"]: row["id"] for row in existing}
    ids = []
    for body in DEMO_COHORTS:
        if body["name"] in by_name:
            ids.append(by_name[body["name"]])
            continue
        response = httpx.post(base, json=body, headers=headers, timeout=30)
        if response.status_code != 201:
            raise CliError(f"creating demo cohort {body['name']!r} failed: {response.status_code} {response.text}")
        ids.append(response.json()["id"])
    return ids


def stream_demo(
    settings: Settings,
    team_id: int,
    *,
    persons: int = 3_000,
    rate_per_s: float = 50.0,
    duration_s: float | None = None,
    seed: int = 7,
) -> int:
    """Seed the population, then produce events at `rate_per_s` until `duration_s` passes or Ctrl-C."""
    topics = Topics(settings.topic_prefix, settings.partitions)
    population = DemoPopulation(team_id, size=persons, seed=seed)
    producer = json_producer(settings.bootstrap)
    now_us = time.time_ns() // 1_000
    for person_id in population.person_ids:
        produce_json(producer, topics.persons, person_id, population.person_record(person_id, now_us))
        produce_json(producer, topics.distinct_ids, person_id, population.distinct_id_record(person_id))
    producer.flush(30)
    sent = 0
    started = time.monotonic()
    try:
        while duration_s is None or time.monotonic() - started < duration_s:
            due = int((time.monotonic() - started) * rate_per_s)
            now_us = time.time_ns() // 1_000
            while sent < due:
                event = population.event(now_us)
                produce_json(producer, topics.events, event["uuid"], event)
                sent += 1
                if sent % 500 == 0:
                    for record in population.person_updates(now_us, 5):
                        produce_json(producer, topics.persons, record["id"], record)
            producer.poll(0)
            time.sleep(0.05)
    except KeyboardInterrupt:
        typer.echo(f"demo stopped after {sent} events", err=True)
    finally:
        producer.flush(30)
    return sent
