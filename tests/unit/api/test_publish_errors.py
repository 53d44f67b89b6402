"""How a write that Kafka did not take, or took but this process did not apply, answers."""

from __future__ import annotations

import pytest

from api.publisher import NotApplied, OutcomeUnknown, PublishError, WriteConflict
from tests.unit.api.conftest import Api


def failing(error: PublishError):
    def write(*args, **kwargs) -> None:
        raise error

    return write


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (PublishError("down"), 503, "kafka_unavailable"),
        (NotApplied("slow"), 503, "not_applied_yet"),
        (OutcomeUnknown("unsure"), 503, "outcome_unknown"),
        (WriteConflict("busy"), 409, "conflict"),
    ],
)
def test_publish_failures_answer_with_the_error_envelope(
    api: Api, monkeypatch: pytest.MonkeyPatch, error: PublishError, status: int, code: str
) -> None:
    cohort = api.create(name="x", is_static=True)
    monkeypatch.setattr(api.publisher, "write", failing(error))
    for response in (
        api.patch(f"cohorts/{cohort['id']}/", json={"name": "y"}),
        api.post("cohorts/", json={"name": "z"}),
        api.patch(f"cohorts/{cohort['id']}/add_persons_to_static_cohort/", json={"person_ids": ["p"]}),
    ):
        assert response.status_code == status
        body = response.json()
        assert (body["code"], body["attr"]) == (code, None) and body["detail"]
    monkeypatch.undo()
    assert api.get(f"cohorts/{cohort['id']}/").json()["name"] == "x"


def test_a_retrieve_still_answers_when_its_view_cannot_be_logged(api: Api) -> None:
    cohort = api.create(name="x")
    api.publisher.fail = True
    assert api.get(f"cohorts/{cohort['id']}/").status_code == 200
    response = api.post("file_system/log_view/", json={"type": "cohort", "ref": "1"})
    assert (response.status_code, response.json()["code"]) == (503, "kafka_unavailable")
    api.publisher.fail = False
    assert api.get("file_system/log_view/").json() == []


def test_a_refused_write_produces_nothing(api: Api) -> None:
    cohort = api.create(name="dyn")
    produced = (len(api.publisher.catalog), len(api.publisher.control), len(api.publisher.api_log))
    response = api.patch(f"cohorts/{cohort['id']}/add_persons_to_static_cohort/", json={"person_ids": ["p"]})
    assert response.status_code == 400
    assert (len(api.publisher.catalog), len(api.publisher.control), len(api.publisher.api_log)) == produced


def test_a_write_is_one_catalog_record_plus_its_log_records(api: Api) -> None:
    """Scenario: a static cohort created with members is one atomic set of records: the row,
    the worker's static_add per member, and the api log's members, filters and activity."""
    person = api.person()
    cohort = api.create(name="list", is_static=True, _create_static_person_ids=[person])
    assert [r.id for r in api.publisher.catalog] == [cohort["id"]]
    assert [(e.message.type, e.message.person_id) for e in api.publisher.control] == [("static_add", person)]
    assert [type(r).__name__ for r in api.publisher.api_log] == [
        "DefinitionRecord",
        "StaticMembersRecord",
        "ActivityRecord",
    ]
