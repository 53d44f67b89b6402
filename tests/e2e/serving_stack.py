"""The serving stack as a client sees it: a real api process over HTTP, and the inputs it serves.

Owns, for end-to-end tests:
- `start_api`: `python -m cli api` as a subprocess on a free port, configured by `COHORTS_*`
  variables, ready once `/_ready` answers 200.
- `ApiClient`: a personal-API-key client of one project over HTTP (httpx), with the few calls the
  tests make (cohorts, persons pages walked to the end).
- `Inputs`: PostHog-format persons, distinct ids and events produced to the input topics, kept
  as the reference evaluator's raw history, and `expected_members`, which asks
  `cohorts.reference.reference_members` what every cohort should hold now.

Never: reads the api's or the worker's RocksDB; talks to the api other than over HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer

from cli.local_kafka import free_port
from cohorts.reference import RawEvent, RawPerson, reference_members
from cohorts.settings import Settings
from cohorts.timestamps import format_iso
from cohorts.topics import Topics
from cohorts.validate import definition_from_record
from cohorts.wire import CatalogRecord

__all__ = [
    "ApiClient",
    "ApiProcess",
    "Inputs",
    "clickhouse_time",
    "eventually",
    "start_api",
]


def clickhouse_time(ts_us: int) -> str:
    """PostHog's ClickHouse timestamp text, `YYYY-MM-DD HH:MM:SS.ffffff` (UTC)."""
    return format_iso(ts_us).replace("T", " ").rstrip("Z")


def eventually(check: Callable[[], Any], timeout_s: float, describe: Callable[[], str] = lambda: "") -> Any:
    """Call `check` until it returns something truthy; fail with `describe()` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s:.0f}s: {describe()}")
        time.sleep(0.2)


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_api(settings: Settings, log_dir: Path, *, timeout_s: float = 60.0) -> ApiProcess:
    """`python -m cli api` for `settings` on a free loopback port; returns once it is ready."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("COHORTS_")}
    env.update(
        {
            "COHORTS_KAFKA_BOOTSTRAP": settings.bootstrap,
            "COHORTS_TOPIC_PREFIX": settings.topic_prefix,
            "COHORTS_PARTITIONS": str(settings.partitions),
            "COHORTS_DATA_DIR": str(settings.data_dir),
            "COHORTS_API_HOST": "127.0.0.1",
            "COHORTS_API_PORT": str(port),
        }
    )
    log_path = log_dir / f"api-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "cli", "api"], env=env, stdout=log, stderr=subprocess.STDOUT)
    api = ApiProcess(process, log_path, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"api exited with {process.returncode}:\n{api.log()[-4000:]}")
            try:
                if httpx.get(f"{api.url}/_ready", timeout=2).status_code == 200:
                    return api
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"api not ready after {timeout_s:.0f}s:\n{api.log()[-4000:]}")
            time.sleep(0.2)
    except BaseException:
        api.stop()
        raise


class ApiClient:
    """One project's personal API key against one api process."""

    def __init__(self, base_url: str, project_id: int, key: str) -> None:
        self.project_id = project_id
        self._http = httpx.Client(
            base_url=f"{base_url}/api/projects/{project_id}/",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._http.request(method, path, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        """The JSON body of a call that must answer `status`."""
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.ok("POST", "cohorts/", 201, json=body)

    def cohort(self, cohort_id: int) -> dict[str, Any]:
        return self.ok("GET", f"cohorts/{cohort_id}/")

    def patch(self, cohort_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self.ok("PATCH", f"cohorts/{cohort_id}/", json=body)

    def persons_page(self, cohort_id: int, **params: Any) -> dict[str, Any]:
        return self.ok("GET", f"cohorts/{cohort_id}/persons/", params=params)

    def all_persons(self, cohort_id: int, *, limit: int = 100, **params: Any) -> list[dict[str, Any]]:
        """Every person of `persons/`, following `next` to the end."""
        results: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.persons_page(cohort_id, limit=limit, offset=offset, **params)
            results.extend(page["results"])
            if page["next"] is None:
                return results
            offset += limit


@dataclass
class Inputs:
    """What the test produced, as PostHog messages on the broker and as the reference's raw history."""

    bootstrap: str
    topics: Topics
    team_id: int
    events: list[RawEvent] = field(default_factory=list)
    persons: list[RawPerson] = field(default_factory=list)
    static_members: dict[int, set[str]] = field(default_factory=dict)
    _producer: Producer | None = None

    def __post_init__(self) -> None:
        self._producer = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random"})

    def _send(self, topic: str, key: str, value: dict[str, Any]) -> None:
        assert self._producer is not None
        self._producer.produce(topic, key=key.encode(), value=orjson.dumps(value))

    def flush(self) -> None:
        assert self._producer is not None
        assert self._producer.flush(30) == 0

    def person(
        self, person_id: str, version: int, created_at_us: int, *, deleted: bool = False, **properties: Any
    ) -> None:
        """A `clickhouse_person` upsert (properties as a JSON string, flags as 0/1)."""
        self._send(
            self.topics.persons,
            person_id,
            {
                "id": person_id,
                "team_id": self.team_id,
                "properties": orjson.dumps(properties).decode(),
                "is_identified": 1,
                "is_deleted": 1 if deleted else 0,
                "version": version,
                "created_at": clickhouse_time(created_at_us),
            },
        )
        self.persons.append(RawPerson(self.team_id, person_id, properties, version, deleted))

    def distinct_id(self, person_id: str, distinct_id: str, version: int = 1) -> None:
        """A `clickhouse_person_distinct_id` link."""
        self._send(
            self.topics.distinct_ids,
            distinct_id,
            {
                "team_id": self.team_id,
                "distinct_id": distinct_id,
                "person_id": person_id,
                "is_deleted": 0,
                "version": version,
            },
        )

    def event(self, person_id: str, event: str, ts_us: int, **properties: Any) -> None:
        """A `clickhouse_events_json` message as PostHog's ingestion writes it."""
        self._send(
            self.topics.events,
            f"{person_id}-{event}-{ts_us}",
            {
                "uuid": f"{person_id}-{event}-{ts_us}",
                "event": event,
                "properties": orjson.dumps(properties).decode(),
                "timestamp": clickhouse_time(ts_us),
                "team_id": self.team_id,
                "project_id": self.team_id,
                "distinct_id": f"d-{person_id}",
                "elements_chain": "",
                "created_at": clickhouse_time(ts_us),
                "person_id": person_id,
                "person_mode": "full",
            },
        )
        self.events.append(RawEvent(self.team_id, person_id, event, ts_us, properties))

    def expected_members(self, cohorts: list[dict[str, Any]], now_us: int) -> dict[int, set[str]]:
        """cohort id -> the reference evaluator's members, for cohorts as the api renders them."""
        definitions = {
            c["id"]: definition_from_record(
                CatalogRecord(
                    id=c["id"],
                    team_id=self.team_id,
                    version=c["pending_version"] or 1,
                    is_static=c["is_static"],
                    deleted=c["deleted"],
                    filters=c["filters"],
                )
            )
            for c in cohorts
        }
        return reference_members(definitions, self.events, self.persons, self.static_members, now_us)
