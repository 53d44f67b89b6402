"""The api against a real broker: what it writes lands in Kafka, what it reads comes from Kafka.

Each test gets its own topics (unique prefix) and data dir; the app runs with its real
publisher and its consumer thread.
"""

from __future__ import annotations

import time
import uuid
import warnings
from pathlib import Path

import orjson
import pytest

from api.main import create_app
from cohorts.settings import Settings
from cohorts.topics import Topics, partition_for, person_key
from cohorts.wire import CalculationReport, CatalogRecord, ControlMessage, DeadLetter, MembershipChange
from tests.integration.api_harness import eventually, person_record, produce, read_topic, running_api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.kafka


@pytest.fixture
def setup(make_topics, make_settings, tmp_path: Path) -> tuple[Topics, Settings]:
    topics = make_topics(partitions=4)
    return topics, make_settings(topics, tmp_path / "data")


def test_catalog_records_and_reservations_land_in_the_catalog_topic(setup) -> None:
    topics, settings = setup
    with running_api(settings) as api:
        cohort = api.call("POST", "cohorts/", json={"name": "Acme", "filters": _person_filters()}).json()
        assert api.call("PATCH", f"cohorts/{cohort['id']}/", json={"name": "Acme 2"}).status_code == 200
    messages = read_topic(settings.bootstrap, topics.catalog, 1, expect=4)
    by_key: dict[bytes, list] = {}
    for message in messages:
        by_key.setdefault(message.key(), []).append(message)
    records = [CatalogRecord.from_bytes(m.value()) for m in by_key[str(cohort["id"]).encode()]]
    assert [(r.version, r.name) for r in records] == [(1, "Acme"), (2, "Acme 2")]
    assert records[0].filters == cohort["filters"] and records[0].team_id == api.project_id
    reservation = next(m for m in messages if m.key().startswith(b"reserve:") and m.value() is not None)
    assert reservation.offset() + 1 == cohort["id"]


def test_persons_from_the_person_topic_can_be_added_and_control_lands_on_the_murmur2_partition(setup) -> None:
    topics, settings = setup
    with running_api(settings) as api:
        person = str(uuid.uuid4())
        produce(settings.bootstrap, topics.persons, [person_record(api.project_id, person, {"email": "a@acme.com"})])
        cohort = api.call("POST", "cohorts/", json={"name": "list", "is_static": True}).json()
        path = f"cohorts/{cohort['id']}/add_persons_to_static_cohort/"
        eventually(lambda: api.call("PATCH", path, json={"person_ids": [person]}).status_code == 200)
        assert api.call("GET", f"cohorts/{cohort['id']}/").json()["count"] == 1
        listed = api.call("GET", f"cohorts/{cohort['id']}/persons/").json()["results"]
        assert [(p["id"], p["properties"]) for p in listed] == [(person, {"email": "a@acme.com"})]
    (message,) = read_topic(settings.bootstrap, topics.control, topics.partitions, expect=1)
    key = person_key(api.project_id, person).encode()
    assert message.key() == key
    assert message.partition() == partition_for(key, topics.partitions)
    control = ControlMessage.from_bytes(message.value())
    assert (control.type, control.cohort_id, control.person_id) == ("static_add", cohort["id"], person)


def test_csv_upload_resolves_distinct_ids_from_the_distinct_id_topic(setup) -> None:
    topics, settings = setup
    with running_api(settings) as api:
        person = str(uuid.uuid4())
        produce(settings.bootstrap, topics.persons, [person_record(api.project_id, person, {})])
        link = {
            "team_id": api.project_id,
            "distinct_id": "device-1",
            "person_id": person,
            "is_deleted": 0,
            "version": 1,
        }
        produce(settings.bootstrap, topics.distinct_ids, [orjson.dumps(link)])
        files = {"csv": ("ids.csv", b"device-1\n", "text/csv")}

        def upload() -> bool:
            response = api.call("POST", "cohorts/", data={"name": "csv", "is_static": "true"}, files=files)
            assert response.status_code == 201, response.text
            return response.json()["count"] == 1

        eventually(upload)


def test_membership_and_reports_from_the_worker_topics_drive_the_cohort_fields(setup) -> None:
    topics, settings = setup
    with running_api(settings) as api:
        cohort = api.call("POST", "cohorts/", json={"name": "c", "filters": _person_filters()}).json()
        people = [str(uuid.uuid4()) for _ in range(3)]
        changes = [
            MembershipChange(api.project_id, cohort["id"], p, "entered", "2026-01-01T00:00:00Z", 1).to_bytes()
            for p in people
        ]
        changes.append(
            MembershipChange(api.project_id, cohort["id"], people[0], "left", "2026-01-01T00:00:01Z", 1).to_bytes()
        )
        changes.append(changes[1])  # a duplicate changes nothing
        produce(settings.bootstrap, topics.membership_changed, changes)
        reports = [
            CalculationReport(
                api.project_id, cohort["id"], 1, p, "2026-01-01T00:00:00Z", "2026-01-01T00:00:02Z", 1 if p < 2 else 0
            ).to_bytes()
            for p in range(topics.partitions)
        ]
        produce(settings.bootstrap, topics.calculation_reports, reports, key=str(cohort["id"]).encode())

        def settled() -> dict | None:
            body = api.call("GET", f"cohorts/{cohort['id']}/").json()
            return body if body["version"] == 1 and body["count"] == 2 else None

        body = eventually(settled)
        assert body["is_calculating"] is False and body["last_calculation"] == "2026-01-01T00:00:02.000000Z"
        history = api.call("GET", f"cohorts/{cohort['id']}/calculation_history/").json()
        assert history["count"] == 1 and history["results"][0]["count"] == 2
        members = api.call("GET", f"cohorts/{cohort['id']}/persons/").json()["results"]
        assert sorted(p["id"] for p in members) == sorted(people[1:])


def test_bad_records_are_dead_lettered_counted_and_consumption_goes_on(setup) -> None:
    """Scenario: garbage on the person topic and on the api's own log; both are dead-lettered
    with their source, counted by topic and reason, and the records after them are applied."""
    topics, settings = setup
    with running_api(settings) as api:
        person = str(uuid.uuid4())
        produce(settings.bootstrap, topics.persons, [b"not json", person_record(api.project_id, person, {})])
        produce(settings.bootstrap, topics.api_log, [b'{"kind": "gossip"}'])
        cohort = api.call("POST", "cohorts/", json={"name": "list", "is_static": True}).json()
        path = f"cohorts/{cohort['id']}/add_persons_to_static_cohort/"
        eventually(lambda: api.call("PATCH", path, json={"person_ids": [person]}).status_code == 200)
        assert api.client.get("/_ready").json() == {"status": "ready"}
        metrics = api.client.get("/metrics").text
        assert f'cohorts_api_dead_letters_total{{reason="PersonRecordError",topic="{topics.persons}"}} 1.0' in metrics
        assert f'cohorts_api_dead_letters_total{{reason="ApiLogError",topic="{topics.api_log}"}} 1.0' in metrics
    messages = read_topic(settings.bootstrap, topics.dead_letters, topics.partitions, expect=2)
    letters = {DeadLetter.from_bytes(m.value()).source_topic: DeadLetter.from_bytes(m.value()) for m in messages}
    assert letters[topics.persons].original == b"not json"
    assert letters[topics.api_log].reason.startswith("ApiLogError")


def test_restart_resumes_views_from_stored_offsets_without_double_counting(setup) -> None:
    topics, settings = setup
    with running_api(settings) as api:
        cohort = api.call("POST", "cohorts/", json={"name": "c", "filters": _person_filters()}).json()
        change = MembershipChange(api.project_id, cohort["id"], "p-1", "entered", "2026-01-01T00:00:00Z", 1)
        produce(settings.bootstrap, topics.membership_changed, [change.to_bytes()])
        reports = [
            CalculationReport(
                api.project_id, cohort["id"], 1, p, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", 0
            ).to_bytes()
            for p in range(topics.partitions)
        ]
        produce(settings.bootstrap, topics.calculation_reports, reports)
        eventually(lambda: api.call("GET", f"cohorts/{cohort['id']}/").json()["count"] == 1)
        project_id, headers = api.project_id, api.headers
    with TestClient(create_app(settings)) as client:
        url = f"/api/projects/{project_id}/cohorts/{cohort['id']}/"
        assert client.get(url, headers=headers).json()["count"] == 1
        time.sleep(1.0)  # the consumer has had time to (wrongly) re-read anything
        body = client.get(url, headers=headers).json()
        assert (body["count"], body["name"], body["version"]) == (1, "c", 1)


def _person_filters() -> dict:
    leaf = {"type": "person", "key": "email", "operator": "icontains", "value": "@acme.com"}
    return {"properties": {"type": "AND", "values": [leaf]}}
