"""What the api-side reliability scenarios (4, 5) share: an api process, a client, persons, a snapshot.

- `provision`: a project and an all-scopes key in a data dir's auth database (not in Kafka: a
  deployment gives every api process the same auth data, so a wiped api keeps it).
- `ApiHttp`: one key of one project over HTTP with a per-call timeout, so a test can bound how
  long a refused write may take instead of inheriting a client default.
- `produce_persons`: `clickhouse_person` records, so static adds and `persons/` have someone to show.
- `kill_api`: SIGKILL, nothing flushed. `wipe_api_views`: delete the views the api folds from Kafka.
- `snapshot`: everything a client can read about a set of cohorts (rows, persons, activity), to
  compare before and after a failure.

Nothing here is a test; it never kills a process it did not start.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from api.admin import create_key, create_project
from cohorts.settings import Settings
from cohorts.topics import Topics
from tests.e2e.serving_stack import ApiProcess
from tests.integration.api_harness import person_record, produce

__all__ = [
    "ApiHttp",
    "Timed",
    "kill_api",
    "produce_persons",
    "provision",
    "snapshot",
    "stable",
    "wipe_api_views",
]


def provision(settings: Settings, name: str = "Reliable") -> tuple[int, str]:
    """`(project id, key)`: a new project and a key with every scope, in `settings.data_dir`."""
    project = create_project(settings, name)
    return project["id"], create_key(settings, project["id"], "ops@reliable.example", ["*"])["key"]


class Timed:
    """A response with how long it took (seconds)."""

    def __init__(self, response: httpx.Response, elapsed_s: float) -> None:
        self.response = response
        self.elapsed_s = elapsed_s

    @property
    def status(self) -> int:
        return self.response.status_code

    def json(self) -> Any:
        return self.response.json()


class ApiHttp:
    """One project's key against one api process; every call has an explicit timeout."""

    def __init__(self, base_url: str, project_id: int, key: str, *, timeout_s: float = 60.0) -> None:
        self.project_id = project_id
        self._http = httpx.Client(
            base_url=f"{base_url}/api/projects/{project_id}/",
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout_s,
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Timed:
        started = time.monotonic()
        response = self._http.request(method, path, **kwargs)
        return Timed(response, time.monotonic() - started)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        timed = self.call(method, path, **kwargs)
        assert timed.status == status, f"{method} {path}: {timed.status} {timed.response.text}"
        return timed.json()

    def all_pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a limit/offset list, following `next` to the end."""
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.ok("GET", path, params={"limit": 100, "offset": offset, **params})
            rows += page["results"]
            if page["next"] is None:
                return rows
            offset += 100

    def activity(self, cohort_id: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.ok("GET", f"cohorts/{cohort_id}/activity/", params={"page": page, "limit": 100})
            rows += body["results"]
            if body["next"] is None:
                return rows
            page += 1


def produce_persons(bootstrap: str, topics: Topics, team_id: int, count: int) -> list[str]:
    """`count` persons (UUID ids, an email each) on `clickhouse_person`; returns their ids."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for person_id in ids:
        value = person_record(team_id, person_id, {"email": f"{person_id[:8]}@reliable.example"})
        produce(bootstrap, topics.persons, [value], key=person_id.encode())
    return ids


def kill_api(api: ApiProcess) -> None:
    """SIGKILL: no shutdown code runs, no producer is flushed, no transaction is aborted."""
    api.process.kill()
    api.process.wait(10)


def wipe_api_views(settings: Settings) -> None:
    """Delete the api's RocksDB (every view and consumer position); the auth database stays."""
    shutil.rmtree(Path(settings.data_dir) / "api")


def stable(row: dict[str, Any]) -> dict[str, Any]:
    """A cohort row without what moves by itself (the worker's calculation fields)."""
    moving = ("is_calculating", "last_calculation", "count", "errors_calculating", "last_error_message")
    return {k: v for k, v in row.items() if k not in moving}


def snapshot(client: ApiHttp, cohort_ids: list[int]) -> dict[str, Any]:
    """What a client reads about `cohort_ids`: each row, its persons (ids) and its activity."""
    rows = {}
    persons = {}
    activity = {}
    for cohort_id in cohort_ids:
        rows[cohort_id] = stable(client.ok("GET", f"cohorts/{cohort_id}/"))
        persons[cohort_id] = sorted(p["uuid"] for p in client.all_pages(f"cohorts/{cohort_id}/persons/"))
        activity[cohort_id] = sorted((a["id"], a["activity"]) for a in client.activity(cohort_id))
    listed = sorted(row["id"] for row in client.all_pages("cohorts/"))
    return {"rows": rows, "persons": persons, "activity": activity, "listed": listed}
