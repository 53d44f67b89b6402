"""Create, retrieve, update, delete of cohorts (reference §1.0-§1.5, §2, design §8)."""

from __future__ import annotations

import pytest

from tests.unit.api.conftest import Api, behavioral_filters, cohort_filters, person_filters

PUBLIC_FIELDS = [
    "id",
    "name",
    "description",
    "groups",
    "deleted",
    "filters",
    "query",
    "version",
    "pending_version",
    "is_calculating",
    "created_by",
    "created_at",
    "last_calculation",
    "last_backfill_person_properties_at",
    "errors_calculating",
    "last_error_message",
    "count",
    "last_import_total_count",
    "last_import_unmatched_count",
    "population",
    "is_static",
    "cohort_type",
    "condition_type",
    "experiment_set",
]


def error(response, status: int, detail: str, attr: str | None = None, code: str = "invalid_input") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"] == detail
    assert body["attr"] == attr
    assert body["code"] == code
    assert body["type"] == ("validation_error" if status == 400 else body["type"])


# Create ----------------------------------------------------------------------------------------


def test_create_dynamic_cohort_returns_201_with_every_public_field(api: Api) -> None:
    response = api.post("cohorts/", json={"name": "Acme", "filters": person_filters()})
    assert response.status_code == 201
    body = response.json()
    assert list(body) == PUBLIC_FIELDS
    assert body["name"] == "Acme"
    assert body["is_static"] is False
    assert body["cohort_type"] == "realtime"
    assert body["is_calculating"] is True
    assert body["pending_version"] == 1 and body["version"] is None and body["count"] is None
    assert body["created_by"]["email"] == "ann@acme.com"
    assert body["created_at"] == "2026-01-01T00:00:00.000000Z"
    assert body["experiment_set"] == []
    leaf = body["filters"]["properties"]["values"][0]
    assert leaf["negation"] is False and "conditionHash" in leaf
    assert body["condition_type"] == {
        "person_properties": True,
        "behavioral": False,
        "lifecycle": False,
        "cohorts": False,
    }


def test_create_publishes_one_catalog_record_and_no_control_message(api: Api) -> None:
    """Scenario: the worker derives `recalculate` from the catalog; the api sends none itself."""
    cohort = api.create(name="Acme", filters=person_filters())
    record = api.publisher.catalog[-1]
    assert (record.id, record.team_id, record.version, record.is_static) == (cohort["id"], api.project_id, 1, False)
    assert record.filters == cohort["filters"]
    assert api.publisher.control == []


def test_cohort_ids_come_from_the_publisher_reservation_and_are_unique(api: Api) -> None:
    ids = [api.create(name=f"c{i}")["id"] for i in range(3)]
    assert len(set(ids)) == 3
    assert ids == sorted(ids)


def test_create_with_empty_body_creates_dynamic_cohort_without_criteria(api: Api) -> None:
    response = api.post("cohorts/", json={})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] is None
    assert body["filters"] == {"properties": {}}
    assert body["cohort_type"] is None


def test_create_static_cohort_with_name_only_is_empty_and_not_calculating(api: Api) -> None:
    body = api.create(name="List", is_static=True)
    assert body["is_static"] is True
    assert body["count"] == 0
    assert body["is_calculating"] is False
    assert not [e for e in api.publisher.control if e.message.type == "recalculate"]


def test_read_only_fields_sent_by_the_client_are_ignored(api: Api) -> None:
    body = api.create(name="x", id=999, count=5, is_calculating=False, created_at="2020-01-01")
    assert body["id"] != 999
    assert body["count"] is None


def test_unknown_field_is_refused(api: Api) -> None:
    error(api.post("cohorts/", json={"name": "x", "colour": "red"}), 400, "Unknown field 'colour'.", "colour")


@pytest.mark.parametrize(
    ("body", "detail", "attr", "code"),
    [
        ({"name": ["a"]}, "Not a valid string.", "name", "invalid_input"),
        ({"name": "x" * 401}, "Ensure this field has no more than 400 characters.", "name", "max_length"),
        ({"description": None}, "This field may not be null.", "description", "null"),
        ({"is_static": "maybe"}, "Must be a valid boolean.", "is_static", "invalid_input"),
        (
            {"_create_static_person_ids": "x"},
            'Expected a list of items but got type "str".',
            "_create_static_person_ids",
            "not_a_list",
        ),
    ],
)
def test_field_type_errors_use_drf_messages(api: Api, body, detail, attr, code) -> None:
    error(api.post("cohorts/", json=body), 400, detail, attr, code)


def test_numbers_are_accepted_as_strings_like_drf(api: Api) -> None:
    assert api.create(name=42)["name"] == "42"


def test_malformed_json_is_a_parse_error(api: Api) -> None:
    response = api.post("cohorts/", content=b'{"name": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert response.json()["type"] == "invalid_request"


def test_non_object_body_is_refused(api: Api) -> None:
    error(api.post("cohorts/", json=[1, 2]), 400, "Invalid data. Expected a dictionary, but got list.")


def test_body_over_the_limit_is_413_with_envelope(api: Api) -> None:
    response = api.post(
        "cohorts/", content=b"[" + b"1," * 600_000 + b"1]", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_unsupported_media_type_is_415(api: Api) -> None:
    response = api.post("cohorts/", content=b"name=x", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_filters_without_properties_is_refused_with_posthog_text(api: Api) -> None:
    error(
        api.post("cohorts/", json={"filters": {"type": "AND"}}),
        400,
        "Must contain a 'properties' key with type and values",
        "filters",
    )


def test_person_leaf_missing_value_names_the_key(api: Api) -> None:
    filters = {"properties": {"type": "AND", "values": [{"type": "person", "key": "email", "operator": "exact"}]}}
    error(
        api.post("cohorts/", json={"filters": filters}),
        400,
        "Missing required keys for person filter: value",
        "filters",
    )


def test_filter_test_accounts_is_refused(api: Api) -> None:
    response = api.post("cohorts/", json={"filters": {**person_filters(), "filterTestAccounts": True}})
    assert response.status_code == 400
    assert response.json()["attr"] == "filters"
    assert "filterTestAccounts" in response.json()["detail"]


def test_static_cohort_accepts_criteria_less_filters_unvalidated(api: Api) -> None:
    body = api.create(is_static=True, filters={"properties": {}})
    assert body["filters"] == {"properties": {}}


@pytest.mark.parametrize(
    ("groups", "detail"),
    [
        ("x", "Groups must be a list of cohort group definitions."),
        ([1], "Cohort group at index 0 must be an object."),
        ([{"days": 3}], "Invalid cohort group at index 0: Cohort group needs properties or action_id or event_id"),
    ],
)
def test_groups_errors(api: Api, groups, detail) -> None:
    error(api.post("cohorts/", json={"groups": groups}), 400, detail, "groups")


def test_legacy_groups_are_stored_normalised_and_read_as_filters(api: Api) -> None:
    body = api.create(groups=[{"properties": [{"key": "email", "value": "a@b.c", "type": "person"}]}])
    assert body["groups"][0]["action_id"] is None and body["groups"][0]["days"] is None
    assert body["filters"]["properties"]["type"] == "OR"
    assert api.publisher.catalog[-1].filters == body["filters"]


def test_legacy_action_groups_are_refused_because_actions_cannot_be_computed(api: Api) -> None:
    response = api.post("cohorts/", json={"groups": [{"action_id": 3, "days": 7}]})
    assert response.status_code == 400
    assert response.json()["attr"] == "groups"


def test_query_and_filters_together_are_refused(api: Api) -> None:
    source = api.create(name="src", filters=person_filters())
    query = {"kind": "HogQLQuery", "query": f"SELECT person_id FROM cohort_people WHERE cohort_id = {source['id']}"}
    error(
        api.post("cohorts/", json={"is_static": True, "query": query, "filters": person_filters()}),
        400,
        "Cannot set both query and filters at the same time.",
    )


def test_dynamic_cohort_with_query_is_refused(api: Api) -> None:
    source = api.create(name="src")
    query = {"kind": "HogQLQuery", "query": f"SELECT person_id FROM cohort_people WHERE cohort_id = {source['id']}"}
    error(
        api.post("cohorts/", json={"query": query}),
        400,
        "Cannot create a dynamic cohort with a query. Set is_static to true.",
    )


@pytest.mark.parametrize(
    ("query", "detail_start"),
    [
        ("SELECT 1", "Query must be a dictionary."),
        ({"kind": "EventsQuery"}, "Query must be an ActorsQuery or HogQLQuery. Got: EventsQuery"),
        ({"kind": "HogQLQuery", "query": "SELECT id FROM persons"}, "Only a query copying another cohort"),
    ],
)
def test_unsupported_queries_are_refused_on_static_cohorts(api: Api, query, detail_start) -> None:
    response = api.post("cohorts/", json={"is_static": True, "query": query})
    assert response.status_code == 400
    assert response.json()["attr"] == "query"
    assert response.json()["detail"].startswith(detail_start)


def test_copy_query_of_unknown_cohort_is_refused(api: Api) -> None:
    query = {"kind": "HogQLQuery", "query": "SELECT person_id FROM cohort_people WHERE cohort_id = 404"}
    error(
        api.post("cohorts/", json={"is_static": True, "query": query}),
        400,
        "Cohort 404 does not exist in this project.",
        "query",
    )


def test_explicit_cohort_type_mismatch_is_refused(api: Api) -> None:
    error(
        api.post("cohorts/", json={"filters": person_filters(), "cohort_type": "behavioral"}),
        400,
        "Cohort type 'behavioral' does not match the filters. Expected type: 'person_property'",
        "cohort_type",
    )


def test_explicit_matching_cohort_type_is_accepted_and_stored_as_realtime(api: Api) -> None:
    body = api.create(filters=behavioral_filters(), cohort_type="behavioral")
    assert body["cohort_type"] == "realtime"


def test_create_referencing_unknown_cohort_is_refused(api: Api) -> None:
    error(api.post("cohorts/", json={"filters": cohort_filters(12345)}), 400, "Invalid Cohort ID in filter")


def test_nothing_is_stored_when_kafka_refuses(api: Api) -> None:
    api.publisher.fail = True
    response = api.post("cohorts/", json={"name": "x"})
    assert response.status_code == 503
    assert response.json()["code"] == "kafka_unavailable"
    api.publisher.fail = False
    assert api.get("cohorts/").json()["count"] == 0


# Retrieve --------------------------------------------------------------------------------------


def test_retrieve_returns_the_cohort_and_trailing_slash_is_optional(api: Api) -> None:
    cohort = api.create(name="x")
    assert api.get(f"cohorts/{cohort['id']}/").json() == cohort
    assert api.get(f"cohorts/{cohort['id']}").json()["id"] == cohort["id"]


@pytest.mark.parametrize("cohort_id", ["abc", "999", "-1", "99999999999999999999999"])
def test_retrieve_unknown_or_non_numeric_id_is_404_not_found(api: Api, cohort_id: str) -> None:
    error(api.get(f"cohorts/{cohort_id}/"), 404, "Not found.", code="not_found")


def test_soft_deleted_cohort_remains_retrievable(api: Api) -> None:
    cohort = api.create(name="x")
    api.patch(f"cohorts/{cohort['id']}/", json={"deleted": True})
    response = api.get(f"cohorts/{cohort['id']}/")
    assert response.status_code == 200
    assert response.json()["deleted"] is True


# Update ----------------------------------------------------------------------------------------


def test_patch_changes_fields_and_bumps_the_catalog_version(api: Api) -> None:
    cohort = api.create(name="x", filters=person_filters())
    response = api.patch(f"cohorts/{cohort['id']}/", json={"name": "y", "description": "d"})
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["description"], body["pending_version"]) == ("y", "d", 2)
    assert api.publisher.catalog[-1].version == 2 and api.publisher.catalog[-1].name == "y"
    assert api.get(f"cohorts/{cohort['id']}/").json()["name"] == "y"


def test_put_acts_like_patch(api: Api) -> None:
    cohort = api.create(name="x")
    response = api.request("PUT", f"cohorts/{cohort['id']}/", json={"name": "z"})
    assert response.status_code == 200
    assert response.json()["name"] == "z"


def test_update_without_change_publishes_nothing(api: Api) -> None:
    cohort = api.create(name="x")
    published = len(api.publisher.catalog)
    response = api.patch(f"cohorts/{cohort['id']}/", json={"name": "x"})
    assert response.status_code == 200
    assert len(api.publisher.catalog) == published


def test_patch_filters_on_dynamic_cohort_recomputes_cohort_type(api: Api) -> None:
    cohort = api.create(name="x")
    assert cohort["cohort_type"] is None
    body = api.patch(f"cohorts/{cohort['id']}/", json={"filters": person_filters()}).json()
    assert body["cohort_type"] == "realtime"


def test_editing_criteria_of_static_cohort_is_refused(api: Api) -> None:
    cohort = api.create(name="x", is_static=True)
    error(
        api.patch(f"cohorts/{cohort['id']}/", json={"filters": person_filters()}),
        400,
        "Editing the criteria of a static cohort is not supported yet. Create a new static cohort instead.",
    )


def test_self_reference_is_a_loop(api: Api) -> None:
    cohort = api.create(name="x")
    error(
        api.patch(f"cohorts/{cohort['id']}/", json={"filters": cohort_filters(cohort["id"])}),
        400,
        "Cohorts cannot reference other cohorts in a loop.",
    )


def test_two_cohort_loop_is_refused(api: Api) -> None:
    a = api.create(name="a")
    b = api.create(name="b", filters=cohort_filters(a["id"]))
    error(
        api.patch(f"cohorts/{a['id']}/", json={"filters": cohort_filters(b["id"])}),
        400,
        "Cohorts cannot reference other cohorts in a loop.",
    )


def test_update_referencing_unknown_cohort_is_refused(api: Api) -> None:
    cohort = api.create(name="x")
    error(
        api.patch(f"cohorts/{cohort['id']}/", json={"filters": cohort_filters(777)}), 400, "Invalid Cohort ID in filter"
    )


def test_update_unknown_cohort_is_404(api: Api) -> None:
    error(api.patch("cohorts/4242/", json={"name": "x"}), 404, "Not found.", code="not_found")


def test_static_to_dynamic_reactivates_filters_and_requests_calculation(api: Api) -> None:
    cohort = api.create(name="x", is_static=True)
    body = api.patch(f"cohorts/{cohort['id']}/", json={"is_static": False, "filters": person_filters()}).json()
    assert body["is_static"] is False and body["is_calculating"] is True
    assert api.publisher.catalog[-1].is_static is False


def test_dynamic_to_static_keeps_current_members(api: Api) -> None:
    cohort = api.create(name="x", filters=person_filters())
    person = api.person({"email": "a@acme.com"})
    api.flip(cohort["id"], person)
    body = api.patch(f"cohorts/{cohort['id']}/", json={"is_static": True}).json()
    assert body["is_static"] is True and body["count"] == 1
    adds = [e for e in api.publisher.control if e.message.type == "static_add"]
    assert [e.message.person_id for e in adds] == [person]


# Delete ----------------------------------------------------------------------------------------


def test_delete_is_always_405_with_empty_body(api: Api) -> None:
    cohort = api.create(name="x")
    for cohort_id in (cohort["id"], 999):
        response = api.request("DELETE", f"cohorts/{cohort_id}/")
        assert response.status_code == 405
        assert response.content == b""
    assert api.get(f"cohorts/{cohort['id']}/").json()["deleted"] is False


def test_soft_delete_and_restore(api: Api) -> None:
    cohort = api.create(name="x", filters=person_filters())
    deleted = api.patch(f"cohorts/{cohort['id']}/", json={"deleted": True}).json()
    assert deleted["deleted"] is True and deleted["is_calculating"] is False
    assert api.publisher.catalog[-1].deleted is True
    assert api.get("cohorts/").json()["count"] == 0
    restored = api.patch(f"cohorts/{cohort['id']}/", json={"deleted": False}).json()
    assert restored["deleted"] is False
    assert api.get("cohorts/").json()["count"] == 1


def test_soft_delete_of_cohort_used_as_criteria_is_refused(api: Api) -> None:
    base = api.create(name="base")
    api.create(name="user one", filters=cohort_filters(base["id"]))
    api.create(name=None, filters=cohort_filters(base["id"]))
    error(
        api.patch(f"cohorts/{base['id']}/", json={"deleted": True}),
        400,
        "This cohort is used as criteria in 2 other cohort(s): user one, Unnamed. "
        "Please remove this cohort from those cohort definitions before deleting it.",
    )


def test_delete_guard_ignores_deleted_users_and_lists_at_most_five_names(api: Api) -> None:
    base = api.create(name="base")
    users = [api.create(name=f"u{i}", filters=cohort_filters(base["id"])) for i in range(7)]
    api.patch(f"cohorts/{users[0]['id']}/", json={"deleted": True})
    response = api.patch(f"cohorts/{base['id']}/", json={"deleted": True})
    assert response.json()["detail"].startswith(
        "This cohort is used as criteria in 6 other cohort(s): u1, u2, u3, u4, u5, and 1 more."
    )


def test_method_not_allowed_has_envelope(api: Api) -> None:
    response = api.post("cohorts/1/", json={})
    assert response.status_code == 405
    assert response.json() == {
        "type": "invalid_request",
        "code": "method_not_allowed",
        "detail": 'Method "POST" not allowed.',
        "attr": None,
    }


def test_unknown_path_is_404_envelope(api: Api) -> None:
    response = api.get("nothing-here/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_streamed_body_over_the_limit_without_content_length_is_413(api: Api) -> None:
    def chunks():
        for _ in range(20):
            yield b" " * 100_000

    response = api.post("cohorts/", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
