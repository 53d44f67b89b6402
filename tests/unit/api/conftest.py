"""Fixtures for the api's unit tests: a real app on a temporary data dir, an in-memory publisher,
no consumer thread (tests feed the views directly), a frozen clock."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.admin import create_key, create_project
from api.main import create_app
from api.publisher import MemoryPublisher
from api.store import Store
from api.views.membership import apply_change
from api.views.persons import apply_distinct_id, apply_person
from api.views.reports import apply_report
from cohorts.settings import Settings

with warnings.catch_warnings():
    # Starlette warns that it prefers `httpx2`; the dev environment has httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@dataclass
class FakeClock:
    now_us: int = START_US

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


@dataclass
class Api:
    """One running app plus helpers to call it as a given key and to feed its views."""

    client: TestClient
    settings: Settings
    publisher: MemoryPublisher
    clock: FakeClock
    project_id: int
    key: str
    keys: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Run the app's shutdown (closes RocksDB), as a process exit would."""
        if not getattr(self.client, "_stopped", False):
            self.client._stopped = True
            self.client.__exit__(None, None, None)

    @property
    def ctx(self):
        return self.client.app.state.ctx

    def url(self, path: str, project: int | str | None = None) -> str:
        return f"/api/projects/{self.project_id if project is None else project}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, key: str | None = None, project=None, **kwargs: Any):
        headers = dict(kwargs.pop("headers", {}) or {})
        token = self.key if key is None else key
        if token:
            headers.setdefault("Authorization", f"Bearer {token}")
        return self.client.request(method, self.url(path, project), headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any):
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any):
        return self.request("PATCH", path, **kwargs)

    def create(self, **body: Any) -> dict[str, Any]:
        response = self.post("cohorts/", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def feed(self, fold: Callable[..., None], *values: dict[str, Any]) -> None:
        batch = self.ctx.store.batch()
        for value in values:
            fold(batch, orjson.dumps(value))
        batch.commit()

    def person(self, properties: dict[str, Any] | None = None, *, person_id: str | None = None, **extra: Any) -> str:
        person_id = person_id or str(uuid.uuid4())
        record = {
            "id": person_id,
            "team_id": self.project_id,
            "properties": orjson.dumps(properties or {}).decode(),
            "is_identified": 0,
            "is_deleted": 0,
            "version": 1,
            "created_at": "2025-01-01 00:00:00.000000",
        }
        record.update(extra)
        self.feed(apply_person, record)
        return person_id

    def distinct_id(self, person_id: str, distinct_id: str, version: int = 1) -> None:
        self.feed(
            apply_distinct_id,
            {
                "team_id": self.project_id,
                "distinct_id": distinct_id,
                "person_id": person_id,
                "is_deleted": 0,
                "version": version,
            },
        )

    def flip(self, cohort_id: int, person_id: str, status: str = "entered", version: int = 1, at: str | None = None):
        self.feed(
            apply_change,
            {
                "team_id": self.project_id,
                "cohort_id": cohort_id,
                "person_id": person_id,
                "status": status,
                "last_updated": at or "2026-01-01T00:00:00Z",
                "version": version,
            },
        )

    def report(self, cohort_id: int, version: int, partition: int, **fields: Any) -> None:
        value = {
            "team_id": self.project_id,
            "cohort_id": cohort_id,
            "version": version,
            "partition": partition,
            "started_at": "2026-01-01T00:00:00Z",
        }
        value.update(fields)
        partitions = self.settings.partitions
        batch = self.ctx.store.batch()
        apply_report(batch, orjson.dumps(value), partitions)
        batch.commit()

    def finish(self, cohort_id: int, version: int, counts: list[int] | None = None, error: str | None = None) -> None:
        """Every partition reports `version` finished."""
        counts = counts or [0] * self.settings.partitions
        for partition, count in enumerate(counts):
            self.report(
                cohort_id,
                version,
                partition,
                finished_at="2026-01-01T00:00:05Z",
                count=count,
                error=error if partition == 0 else None,
            )

    def new_key(self, scopes: list[str], *, project_id: int | None = -1, email: str = "ann@acme.com") -> str:
        project = self.project_id if project_id == -1 else project_id
        return create_key(self.settings, project, email, scopes)["key"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An api view store of its own, for tests of the folds and views without an app."""
    opened = Store(tmp_path / "api")
    yield opened
    opened.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", partitions=4)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def make_api(settings: Settings, clock: FakeClock, publisher: MemoryPublisher) -> Iterator[Callable[[], Api]]:
    """Factory: start an app on the fixture's data dir (call again after exit to restart)."""
    opened: list[Api] = []
    project = create_project(settings, "Acme")
    key = create_key(settings, project["id"], "ann@acme.com", ["*"])["key"]

    def factory(**kwargs: Any) -> Api:
        app = create_app(settings, clock=clock, publisher=publisher, consume=False, **kwargs)
        client = TestClient(app)
        client.__enter__()
        started = Api(client, settings, publisher, clock, project["id"], key)
        opened.append(started)
        return started

    yield factory
    for started in opened:
        started.stop()


@pytest.fixture
def api(make_api: Callable[[], Api]) -> Api:
    return make_api()


def person_filters(key: str = "email", operator: str = "icontains", value: Any = "@acme.com") -> dict[str, Any]:
    return {
        "properties": {"type": "AND", "values": [{"type": "person", "key": key, "operator": operator, "value": value}]}
    }


def cohort_filters(cohort_id: int, negation: bool = False) -> dict[str, Any]:
    leaf = {"type": "cohort", "key": "id", "value": cohort_id, "negation": negation}
    return {"properties": {"type": "AND", "values": [leaf]}}


def behavioral_filters(event: str = "$pageview", kind: str = "performed_event") -> dict[str, Any]:
    leaf = {
        "type": "behavioral",
        "key": event,
        "value": kind,
        "event_type": "events",
        "time_value": 30,
        "time_interval": "day",
    }
    return {"properties": {"type": "AND", "values": [leaf]}}
