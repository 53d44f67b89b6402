"""The cohort list (reference §1.1, §0.4 style 1)."""

from __future__ import annotations

from tests.unit.api.conftest import Api, behavioral_filters, cohort_filters, person_filters


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["name"] for row in response.json()["results"]]


def test_empty_list_envelope(api: Api) -> None:
    assert api.get("cohorts/").json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_newest_first_and_deleted_excluded(api: Api) -> None:
    for name in ("a", "b", "c"):
        api.create(name=name)
        api.clock.advance(1)
    b = api.get("cohorts/?search=b").json()["results"][0]
    api.patch(f"cohorts/{b['id']}/", json={"deleted": True})
    assert names(api.get("cohorts/")) == ["c", "a"]


def test_rows_created_in_the_same_microsecond_are_ordered_by_id_descending(api: Api) -> None:
    ids = [api.create(name=str(i))["id"] for i in range(3)]
    assert [row["id"] for row in api.get("cohorts/").json()["results"]] == ids[::-1]


def test_limit_offset_pagination_with_absolute_links(api: Api) -> None:
    for i in range(5):
        api.create(name=f"c{i}")
        api.clock.advance(1)
    first = api.get("cohorts/?limit=2").json()
    assert first["count"] == 5
    assert names_of(first) == ["c4", "c3"]
    assert first["previous"] is None
    assert first["next"] == f"http://testserver/api/projects/{api.project_id}/cohorts/?limit=2&offset=2"
    second = api.client.get(first["next"], headers={"Authorization": f"Bearer {api.key}"}).json()
    assert names_of(second) == ["c2", "c1"]
    assert second["previous"] == f"http://testserver/api/projects/{api.project_id}/cohorts/?limit=2"
    last = api.get("cohorts/?limit=2&offset=4").json()
    assert names_of(last) == ["c0"]
    assert last["next"] is None
    assert last["previous"].endswith("cohorts/?limit=2&offset=2")


def names_of(page: dict) -> list[str]:
    return [row["name"] for row in page["results"]]


def test_offset_past_the_end_is_an_empty_page(api: Api) -> None:
    api.create(name="x")
    page = api.get("cohorts/?offset=10").json()
    assert page["results"] == [] and page["count"] == 1


def test_type_filter(api: Api) -> None:
    api.create(name="dyn")
    api.create(name="stat", is_static=True)
    assert names(api.get("cohorts/?type=static")) == ["stat"]
    assert names(api.get("cohorts/?type=dynamic")) == ["dyn"]
    assert sorted(names(api.get("cohorts/?type=other"))) == ["dyn", "stat"]


def test_created_by_id_filter(api: Api) -> None:
    api.create(name="mine")
    other = api.new_key(["*"], email="zed@acme.com")
    api.post("cohorts/", key=other, json={"name": "theirs"})
    me = api.get("cohorts/").json()["results"][-1]["created_by"]["id"]
    assert names(api.get(f"cohorts/?created_by_id={me}")) == ["mine"]


def test_each_row_shows_its_own_creator_when_a_page_has_several(api: Api) -> None:
    """The page looks each creator up once: rows of two users and rows of the same user still
    each show the right one, as a retrieve does."""
    api.create(name="ann 1")
    zed = api.new_key(["*"], email="zed@acme.com")
    api.post("cohorts/", key=zed, json={"name": "zed 1"})
    api.create(name="ann 2")
    rows = api.get("cohorts/").json()["results"]
    assert [(r["name"], r["created_by"]["email"]) for r in rows] == [
        ("ann 2", "ann@acme.com"),
        ("zed 1", "zed@acme.com"),
        ("ann 1", "ann@acme.com"),
    ]
    assert all(r["created_by"] == api.get(f"cohorts/{r['id']}/").json()["created_by"] for r in rows)


def test_search_exact_substring_marks_rows_exact(api: Api) -> None:
    api.create(name="Power users")
    api.create(name="Churned")
    page = api.get("cohorts/?search=power").json()
    assert [(r["name"], r["search_match_type"]) for r in page["results"]] == [("Power users", "exact")]


def test_search_without_substring_falls_back_to_similar(api: Api) -> None:
    api.create(name="Engaged users")
    api.create(name="zzz")
    page = api.get("cohorts/?search=engagd users").json()
    assert [(r["name"], r["search_match_type"]) for r in page["results"]] == [("Engaged users", "similar")]


def test_blank_search_is_ignored_and_rows_have_no_match_type(api: Api) -> None:
    api.create(name="a")
    row = api.get("cohorts/?search=%20%20").json()["results"][0]
    assert "search_match_type" not in row


def test_search_over_200_characters_is_400(api: Api) -> None:
    response = api.get("cohorts/", params={"search": "x" * 201})
    assert response.status_code == 400
    assert response.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": "Search query must be 200 characters or fewer.",
        "attr": "search",
    }
    assert api.get("cohorts/", params={"search": "x" * 200}).status_code == 200


def test_basic_drops_heavy_fields_but_keeps_filters(api: Api) -> None:
    api.create(name="a", filters=person_filters())
    row = api.get("cohorts/?basic=true").json()["results"][0]
    for dropped in ("query", "groups", "last_error_message", "experiment_set"):
        assert dropped not in row
    assert row["filters"]["properties"]["values"]
    full = api.get("cohorts/").json()["results"][0]
    assert "groups" in full and full["population"] is None


def test_hide_behavioral_cohorts_hides_direct_and_nested_behavioral(api: Api) -> None:
    behavioral = api.create(name="behavioral", filters=behavioral_filters())
    api.create(name="nested", filters=cohort_filters(behavioral["id"]))
    api.create(name="plain", filters=person_filters())
    assert names(api.get("cohorts/?hide_behavioral_cohorts=true")) == ["plain"]
    assert len(names(api.get("cohorts/?hide_behavioral_cohorts=false"))) == 3


def test_invalid_limit_is_400_and_created_by_id_must_be_integer(api: Api) -> None:
    assert api.get("cohorts/?limit=abc").status_code == 400
    response = api.get("cohorts/?created_by_id=me")
    assert response.status_code == 400
    assert response.json()["attr"] == "created_by_id"
