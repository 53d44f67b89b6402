"""Running api apps against the real broker, for the `test_api_*` integration modules.

Each app runs in-process (a `TestClient` drives its lifespan: real publisher, real feeder) on
its own data dir. Projects and keys live in the auth database of a data dir, which is not
shared through Kafka, so a second api process gets a copy of the first one's (`share_auth`),
as a deployment gives every api process the same auth data.
"""

from __future__ import annotations

import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from api.admin import create_key, create_project
from api.auth_db import auth_path, stamp_path
from api.main import create_app
from cohorts.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = [
    "Running",
    "eventually",
    "person_record",
    "produce",
    "provision",
    "read_topic",
    "running_api",
    "share_auth",
]


@dataclass(frozen=True)
class Access:
    project_id: int
    key: str


class Running:
    """One started app, called as one key of one project."""

    def __init__(self, client: TestClient, settings: Settings, access: Access) -> None:
        self.client = client
        self.settings = settings
        self.project_id = access.project_id
        self.key = access.key
        self.headers = {"Authorization": f"Bearer {access.key}"}

    @property
    def ctx(self):
        return self.client.app.state.ctx

    def as_project(self, access: Access) -> Running:
        return Running(self.client, self.settings, access)

    def call(self, method: str, path: str, **kwargs: Any):
        url = f"/api/projects/{self.project_id}/{path.lstrip('/')}"
        return self.client.request(method, url, headers=self.headers, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def create(self, **body: Any) -> dict[str, Any]:
        return self.ok("POST", "cohorts/", 201, json=body)


def provision(settings: Settings, name: str = "Acme", email: str = "ann@acme.com") -> Access:
    """A new project in the data dir's auth database and a key with every scope for it."""
    project = create_project(settings, name)
    return Access(project["id"], create_key(settings, project["id"], email, ["*"])["key"])


def share_auth(source: Settings, target: Settings) -> None:
    """Give `target`'s data dir a copy of `source`'s projects, users and keys."""
    target.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(auth_path(source.data_dir), auth_path(target.data_dir), dirs_exist_ok=True)
    shutil.copy(stamp_path(source.data_dir), stamp_path(target.data_dir))


def wait_ready(client: TestClient, timeout_s: float = 30.0) -> None:
    eventually(lambda: client.get("/_ready").status_code == 200, timeout_s)


def warm_up(api: Running) -> None:
    """Serve each cohort route once, writing nothing. FastAPI builds a route's dependencies on
    first use under `warnings.catch_warnings()`, which is not thread-safe: two apps doing it at
    once in one test process can leak a pydantic warning, which pytest turns into an error."""
    api.call("GET", "cohorts/")
    api.call("POST", "cohorts/", json=[])
    for method in ("GET", "PATCH"):
        api.call(method, "cohorts/0/", json={})


@contextmanager
def running_api(settings: Settings, access: Access | None = None, *, ready: bool = True) -> Iterator[Running]:
    """Start an app on `settings` (provisioning a project unless given one), ready to serve."""
    access = access or provision(settings)
    with TestClient(create_app(settings)) as client:
        running = Running(client, settings, access)
        if ready:
            wait_ready(client)
            warm_up(running)
        yield running


def eventually(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.05)


def read_topic(bootstrap: str, topic: str, partitions: int, *, expect: int, timeout_s: float = 20.0) -> list:
    """Committed records of `topic` from the beginning, until `expect` arrived or the timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expect and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


def write_retries(api: Running) -> float:
    """The api's `cohorts_api_write_retries` counter: writes it ran again."""
    for family in text_string_to_metric_families(api.client.get("/metrics").text):
        if family.name == "cohorts_api_write_retries":
            return sum(sample.value for sample in family.samples)
    raise AssertionError("no cohorts_api_write_retries metric")


def produce(bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for value in values:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0


def person_record(team_id: int, person_id: str, properties: dict, version: int = 1, **extra: Any) -> bytes:
    record = {
        "id": person_id,
        "team_id": team_id,
        "properties": orjson.dumps(properties).decode(),
        "is_identified": 0,
        "is_deleted": 0,
        "version": version,
        "created_at": "2025-01-01 00:00:00.000000",
        "timestamp": "2025-01-01 00:00:00.000000",
    }
    record.update(extra)
    return orjson.dumps(record)
