"""Static cohorts: add/remove persons, CSV upload, seeds, copies (reference §1.9, §1.10, §1.12, §3)."""

from __future__ import annotations

import uuid

import pytest

from api.services.static_members import MAX_PERSON_IDS
from cohorts.topics import partition_for, person_key
from tests.unit.api.conftest import Api, person_filters


def add(api: Api, cohort_id: int, body):
    return api.patch(f"cohorts/{cohort_id}/add_persons_to_static_cohort/", json=body)


def remove(api: Api, cohort_id: int, body):
    return api.patch(f"cohorts/{cohort_id}/remove_person_from_static_cohort/", json=body)


def detail(response) -> tuple[int, str]:
    return response.status_code, response.json()["detail"]


@pytest.fixture
def static(api: Api) -> dict:
    return api.create(name="list", is_static=True)


# Add -------------------------------------------------------------------------------------------


def test_add_persons_publishes_keyed_control_messages_and_counts(api: Api, static: dict) -> None:
    people = [api.person(), api.person()]
    response = add(api, static["id"], {"person_ids": [*people, str(uuid.uuid4())]})
    assert response.status_code == 200 and response.json() == {"success": True}
    adds = [e for e in api.publisher.control if e.message.type == "static_add"]
    assert [e.message.person_id for e in adds] == people
    assert all(e.key == person_key(api.project_id, e.message.person_id) for e in adds)
    assert all(e.partition is None for e in adds)  # partitioned by the producer's murmur2
    assert api.get(f"cohorts/{static['id']}/").json()["count"] == 2


def test_re_adding_a_member_is_a_no_op(api: Api, static: dict) -> None:
    person = api.person()
    add(api, static["id"], {"person_ids": [person]})
    add(api, static["id"], {"person_ids": [person]})
    assert len([e for e in api.publisher.control if e.message.type == "static_add"]) == 1
    assert api.get(f"cohorts/{static['id']}/").json()["count"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "person_ids must be a list"),
        ({"person_ids": "abc"}, "person_ids must be a list"),
        ([1], "person_ids must be a list"),
        ({"person_ids": []}, "person_ids cannot be empty"),
        ({"person_ids": ["x"] * (MAX_PERSON_IDS + 1)}, "List size exceeds limit"),
        ({"person_ids": [str(uuid.uuid4()), 5]}, "No valid users to add to cohort"),
    ],
)
def test_add_persons_errors_in_posthogs_order(api: Api, static: dict, body, message: str) -> None:
    assert detail(add(api, static["id"], body)) == (400, message)


def test_add_to_dynamic_cohort_is_refused_first(api: Api) -> None:
    dynamic = api.create(name="d")
    assert detail(add(api, dynamic["id"], {})) == (400, "Can only add users to static cohorts")


def test_person_of_another_project_is_not_valid(api: Api, static: dict) -> None:
    foreign = api.person(team_id=api.project_id + 100)
    assert detail(add(api, static["id"], {"person_ids": [foreign]})) == (400, "No valid users to add to cohort")


def test_deleted_person_is_not_valid(api: Api, static: dict) -> None:
    person = api.person()
    api.person(person_id=person, is_deleted=1, version=2)
    assert detail(add(api, static["id"], {"person_ids": [person]})) == (400, "No valid users to add to cohort")


def test_add_to_unknown_cohort_is_404(api: Api) -> None:
    assert add(api, 999, {"person_ids": ["x"]}).status_code == 404


# Remove ----------------------------------------------------------------------------------------


def test_remove_member_publishes_static_remove_and_is_idempotent(api: Api, static: dict) -> None:
    person = api.person()
    add(api, static["id"], {"person_ids": [person]})
    assert remove(api, static["id"], {"person_id": person}).json() == {"success": True}
    assert remove(api, static["id"], {"person_id": person}).status_code == 200
    removes = [e for e in api.publisher.control if e.message.type == "static_remove"]
    assert len(removes) == 1 and removes[0].key == person_key(api.project_id, person)
    assert api.get(f"cohorts/{static['id']}/").json()["count"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "person_id is required"),
        ({"person_id": ""}, "person_id is required"),
        ({"person_id": 123}, "person_id must be a string"),
        ({"person_id": "not-a-uuid"}, "person_id must be a valid UUID"),
    ],
)
def test_remove_errors(api: Api, static: dict, body, message: str) -> None:
    assert detail(remove(api, static["id"], body)) == (400, message)


def test_remove_unknown_person_is_404(api: Api, static: dict) -> None:
    response = remove(api, static["id"], {"person_id": str(uuid.uuid4())})
    assert response.status_code == 404
    assert response.json() == {
        "type": "invalid_request",
        "code": "not_found",
        "detail": "Person with this UUID does not exist in the cohort's team",
        "attr": None,
    }


def test_remove_from_dynamic_cohort_is_refused_before_reading_the_body(api: Api) -> None:
    dynamic = api.create(name="d")
    assert detail(remove(api, dynamic["id"], None)) == (400, "Can only remove users from static cohorts")


# Seeds, CSV, copies ----------------------------------------------------------------------------


def test_create_static_person_ids_seed_synchronously(api: Api) -> None:
    people = [api.person(), api.person()]
    body = api.create(name="seeded", is_static=True, _create_static_person_ids=[*people, "unknown"])
    assert body["count"] == 2
    assert (body["last_import_total_count"], body["last_import_unmatched_count"]) == (3, 1)


def csv_create(api: Api, content: bytes, **fields):
    data = {"name": "csv", "is_static": "true", **fields}
    return api.post("cohorts/", data=data, files={"csv": ("people.csv", content, "text/csv")})


def test_csv_with_person_id_header(api: Api) -> None:
    people = [api.person(), api.person()]
    response = csv_create(api, ("person_id\n" + "\n".join(people) + "\n").encode())
    assert response.status_code == 201, response.text
    assert response.json()["count"] == 2 and response.json()["is_static"] is True


def test_csv_single_column_without_known_header_is_distinct_ids_including_first_row(api: Api) -> None:
    first, second = api.person(), api.person()
    api.distinct_id(first, "User ID")
    api.distinct_id(second, "d-2")
    response = csv_create(api, b"User ID\nd-2\nd-missing\n")
    assert response.json()["count"] == 2
    assert response.json()["last_import_unmatched_count"] == 1


def test_csv_email_column_matches_the_email_property(api: Api) -> None:
    api.person({"email": "a@acme.com"})
    api.person({"email": "b@acme.com"})
    response = csv_create(api, "\ufeffname,E-mail\nA,a@acme.com\nB,nobody@acme.com\n".encode())
    assert response.status_code == 201
    assert response.json()["count"] == 1


def test_csv_multi_column_prefers_person_id_over_distinct_id(api: Api) -> None:
    person = api.person()
    response = csv_create(api, f"distinct_id,person_id\nzzz,{person}\n".encode())
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("content", "start"),
    [
        (b"\xff\xfe\x00bad", "CSV file encoding is not supported."),
        (b"\n\n", "CSV file is empty."),
        (b",,,\n,\n,", "CSV file contains no valid person IDs"),
        (b"name,age\nx,1\n", "Multi-column CSV must contain at least one column with a supported ID header"),
        (b'person_id\n"abc\n', "CSV file format is invalid."),
    ],
)
def test_csv_errors_are_400_with_attr_csv(api: Api, content: bytes, start: str) -> None:
    response = csv_create(api, content)
    assert response.status_code == 400
    assert response.json()["attr"] == "csv"
    assert response.json()["detail"].startswith(start)
    assert api.get("cohorts/").json()["count"] == 0


def test_multi_column_error_lists_the_columns(api: Api) -> None:
    response = csv_create(api, b"name,age\nx,1\n")
    assert response.json()["detail"].endswith("Found columns: 'name', 'age'")


def test_patch_with_csv_adds_to_current_members(api: Api, static: dict) -> None:
    first, second = api.person(), api.person()
    add(api, static["id"], {"person_ids": [first]})
    response = api.patch(
        f"cohorts/{static['id']}/", files={"csv": ("p.csv", f"person_id\n{second}\n".encode(), "text/csv")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 2


def test_csv_on_dynamic_cohort_is_refused(api: Api) -> None:
    response = csv_create(api, b"person_id\nx\n", is_static="false")
    assert response.status_code == 400 and response.json()["attr"] == "csv"


def test_multipart_json_fields_are_parsed(api: Api) -> None:
    import orjson

    response = api.post("cohorts/", data={"name": "m", "filters": orjson.dumps(person_filters()).decode()})
    assert response.status_code == 201
    assert response.json()["cohort_type"] == "realtime"
    bad = api.post("cohorts/", data={"name": "m", "filters": "{not json"})
    assert bad.status_code == 400 and bad.json()["attr"] == "filters"


def test_duplicate_as_static_copies_current_members(api: Api) -> None:
    source = api.create(name="Active", filters=person_filters())
    people = [api.person(), api.person()]
    for person in people:
        api.flip(source["id"], person)
    response = api.get(f"cohorts/{source['id']}/duplicate_as_static_cohort/")
    assert response.status_code == 200
    copy = response.json()
    assert copy["name"] == "Active (static copy)" and copy["is_static"] is True and copy["count"] == 2
    assert copy["id"] != source["id"]
    assert [e["activity"] for e in api.get(f"cohorts/{copy['id']}/activity/").json()["results"]] == []


def test_duplicate_of_static_cohort_is_refused(api: Api, static: dict) -> None:
    response = api.get(f"cohorts/{static['id']}/duplicate_as_static_cohort/")
    assert detail(response) == (400, "Cannot duplicate a static cohort as a static cohort.")


def test_duplicate_needs_cohort_write(api: Api) -> None:
    source = api.create(name="s")
    reader = api.new_key(["cohort:read"])
    response = api.get(f"cohorts/{source['id']}/duplicate_as_static_cohort/", key=reader)
    assert response.status_code == 403


def test_copy_query_populates_a_static_cohort(api: Api) -> None:
    source = api.create(name="src", filters=person_filters())
    person = api.person()
    api.flip(source["id"], person)
    query = {"kind": "HogQLQuery", "query": f"SELECT person_id FROM cohort_people WHERE cohort_id = {source['id']}"}
    body = api.create(name="copy", is_static=True, query=query)
    assert body["count"] == 1 and body["query"] == query


def test_static_add_key_lands_on_the_java_partition(api: Api) -> None:
    """Scenario: the api relies on the producer's murmur2 partitioner; the key alone decides."""
    key = person_key(api.project_id, "00000000-0000-0000-0000-000000000001").encode()
    assert 0 <= partition_for(key, api.settings.partitions) < api.settings.partitions


def test_static_cohort_with_person_criteria_is_filled_once_from_known_persons(api: Api) -> None:
    matching = api.person({"email": "a@acme.com"})
    api.person({"email": "b@other.com"})
    body = api.create(name="acme now", is_static=True, filters=person_filters())
    assert body["count"] == 1 and body["filters"]["properties"]["values"][0]["key"] == "email"
    assert [p["id"] for p in api.get(f"cohorts/{body['id']}/persons/").json()["results"]] == [matching]
    api.person({"email": "c@acme.com"})  # later persons do not join a static cohort
    assert api.get(f"cohorts/{body['id']}/").json()["count"] == 1


def test_static_cohort_from_cohort_criteria_uses_the_referenced_membership(api: Api) -> None:
    from tests.unit.api.conftest import cohort_filters

    source = api.create(name="src", filters=person_filters())
    inside, outside = api.person(), api.person()
    api.flip(source["id"], inside)
    body = api.create(name="frozen", is_static=True, filters=cohort_filters(source["id"], negation=False))
    assert body["count"] == 1
    assert api.get(f"cohorts/{body['id']}/persons/").json()["results"][0]["id"] == inside
    assert outside != inside


def test_static_cohort_with_behavioral_criteria_is_refused(api: Api) -> None:
    from tests.unit.api.conftest import behavioral_filters

    response = api.post("cohorts/", json={"name": "s", "is_static": True, "filters": behavioral_filters()})
    assert response.status_code == 400
    assert response.json()["attr"] == "filters"
    assert "behavioral" in response.json()["detail"]
