"""Serving live membership through the api, end to end (real broker, worker and api processes).

One worker (`python -m stream`, wall clock) and one api (`python -m cli api`, a real uvicorn
server) serve the whole module; the tests talk to the api over HTTP only and produce
PostHog-format persons, distinct ids and events to the input topics. "Right" is what
`cohorts.reference.reference_members` says about everything produced so far, at the moment of
the comparison; "within seconds" is a bounded wait (CONVERGE_S).

Each test creates its own cohorts (and, where it needs them, its own persons), so tests do not
depend on each other's order; all of them share one project and one population.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from api.admin import create_key, create_project
from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics
from tests.e2e.serving_stack import ApiClient, ApiProcess, Inputs, eventually, start_api
from tests.integration.worker_harness import WorkerProcess, start_worker

pytestmark = pytest.mark.kafka

PARTITIONS = 3
CONVERGE_S = 60.0
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


def now_us() -> int:
    return time.time_ns() // 1000


def person_leaf(key: str, value: Any, operator: str = "exact", negation: bool = False) -> dict[str, Any]:
    return {"type": "person", "key": key, "value": value, "operator": operator, "negation": negation}


def performed(event: str, days: int = 7) -> dict[str, Any]:
    return {
        "type": "behavioral",
        "key": event,
        "value": "performed_event",
        "event_type": "events",
        "time_value": days,
        "time_interval": "day",
    }


def in_cohort(cohort_id: int) -> dict[str, Any]:
    return {"type": "cohort", "key": "id", "value": cohort_id}


def filters(*leaves: dict[str, Any], kind: str = "AND") -> dict[str, Any]:
    return {"properties": {"type": kind, "values": list(leaves)}}


@dataclass
class Stack:
    settings: Settings
    worker: WorkerProcess
    api: ApiProcess
    client: ApiClient
    inputs: Inputs
    #: person id -> created_at (µs) of their person record; persons/ orders by it.
    created_at: dict[str, int] = field(default_factory=dict)
    #: Named persons of the shared population.
    people: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return f"--- worker ---\n{self.worker.log()[-2500:]}\n--- api ---\n{self.api.log()[-2500:]}"

    def new_person(self, created_at_us: int, **properties: Any) -> str:
        person_id = str(uuid.uuid4())
        self.inputs.person(person_id, 1, created_at_us, **properties)
        self.created_at[person_id] = created_at_us
        return person_id

    def expected(self, *cohort_ids: int) -> dict[int, set[str]]:
        """The reference's members of `cohort_ids`, with every cohort of the project as context."""
        listed = self.client.ok("GET", "cohorts/", params={"limit": 1000})["results"]
        known = {c["id"]: c for c in listed}
        for cohort_id in cohort_ids:
            if cohort_id not in known:  # soft-deleted cohorts are retrievable but not listed
                known[cohort_id] = self.client.cohort(cohort_id)
        everything = self.inputs.expected_members(list(known.values()), now_us())
        return {cohort_id: everything[cohort_id] for cohort_id in cohort_ids}

    def served(self, cohort_id: int) -> tuple[int | None, list[str]]:
        """(`count`, ids of `persons/` in the order served)."""
        count = self.client.cohort(cohort_id)["count"]
        return count, [p["id"] for p in self.client.all_persons(cohort_id)]

    def wait_calculated(self, cohort_id: int) -> dict[str, Any]:
        """Until the worker has calculated the cohort's newest version (every partition reported)."""

        def check() -> dict[str, Any] | None:
            body = self.client.cohort(cohort_id)
            return body if body["version"] == body["pending_version"] and not body["is_calculating"] else None

        return eventually(check, CONVERGE_S, self.logs)

    def wait_converged(self, *cohort_ids: int, timeout_s: float = CONVERGE_S) -> dict[int, set[str]]:
        """Until `count` and `persons/` of every cohort equal the reference; returns the members."""
        last: dict[int, Any] = {}

        def check() -> dict[int, set[str]] | None:
            expected = self.expected(*cohort_ids)
            for cohort_id in cohort_ids:
                count, ids = self.served(cohort_id)
                last[cohort_id] = (count, sorted(ids), sorted(expected[cohort_id]))
                if count != len(expected[cohort_id]) or len(ids) != len(set(ids)) or set(ids) != expected[cohort_id]:
                    return None
            return expected

        def describe() -> str:
            lines = [f"cohort {c}: count {n}, served {s}, expected {e}" for c, (n, s, e) in last.items()]
            return "\n".join(lines) + "\n" + self.logs()

        return eventually(check, timeout_s, describe)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("serving")
    topics = Topics(prefix=f"e{uuid.uuid4().hex[:10]}_", partitions=PARTITIONS)
    ensure_topics(kafka_bootstrap, topics.specs())
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS, data_dir=work / "data"
    )
    project = create_project(settings, "Serving")
    key = create_key(settings, project["id"], "e2e@acme.com", ["*"])["key"]
    worker = start_worker(settings, work, tick_interval_s=1.0)
    try:
        api = start_api(settings, work)
    except BaseException:
        worker.stop()
        raise
    client = ApiClient(api.url, project["id"], key)
    inputs = Inputs(kafka_bootstrap, topics, team_id=project["id"])
    try:
        yield Stack(settings, worker, api, client, inputs)
    finally:
        client.close()
        api.stop()
        worker.stop()


@pytest.fixture(scope="module")
def population(stack: Stack) -> Stack:
    """Scenario: ten persons with records (created a minute apart, oldest first), one person known
    only from events, one deleted person, a stale person update arriving late, pageviews inside and
    outside a 7-day window, and one person with twelve distinct ids."""
    # The worker keeps event history only for matchers a live cohort uses (docs/design-engine.md
    # §7: no backfill), so a cohort on `$pageview` exists, calculated, before any pageview is
    # produced; later `$pageview` cohorts with a window no longer than its 7 days are exact.
    anchor = stack.client.create({"name": "Anchor: viewed", "filters": filters(performed("$pageview"))})["id"]
    stack.wait_calculated(anchor)
    now = now_us()
    born = now - 30 * DAY_US
    specs = {
        "ann": {"plan": "pro", "email": "ann@acme.com"},
        "bob": {"plan": "free", "email": "bob@example.org"},
        "cat": {"plan": "pro", "email": "cat@example.org"},
        "dan": {"plan": "enterprise", "email": "dan@acme.com"},
        "eve": {"plan": "free", "name": "Eve"},
        "fay": {"plan": "pro", "name": "Fay"},
        "gus": {"plan": "enterprise"},
        "hal": {},
        "ida": {"plan": "pro", "email": "ida@acme.com"},
        "jon": {"plan": "free"},
    }
    for n, (name, properties) in enumerate(specs.items()):
        stack.people[name] = stack.new_person(born + n * 60_000_000, **properties)
    people, inputs = stack.people, stack.inputs
    # bob's v3 says "free"; an older v2 saying "pro" arrives afterwards and must change nothing.
    inputs.person(people["bob"], 3, stack.created_at[people["bob"]], plan="free", email="bob@example.org")
    inputs.person(people["bob"], 2, stack.created_at[people["bob"]], plan="pro", email="bob@example.org")
    # A deleted person is in no cohort.
    zed = stack.new_person(born + 20 * 60_000_000, plan="pro", email="zed@acme.com")
    inputs.person(zed, 2, stack.created_at[zed], deleted=True)
    people["zed"] = zed
    # A person known only from events (no record: empty properties, no created_at).
    people["kim"] = str(uuid.uuid4())
    for name in ("ann", "cat", "eve", "kim", "ida"):
        inputs.event(people[name], "$pageview", now - HOUR_US, path="/")
    inputs.event(people["gus"], "$pageview", now - 20 * DAY_US, path="/")  # outside the window
    inputs.event(people["bob"], "signed_up", now - HOUR_US)
    for n in range(12):
        inputs.distinct_id(people["ann"], f"ann-device-{n:02d}")
    inputs.distinct_id(people["cat"], "cat-laptop")
    inputs.flush()
    stack.wait_converged(anchor)
    return stack


def test_a_post_and_a_patch_are_visible_on_the_next_get(stack: Stack) -> None:
    """Read-your-writes: no wait between the write returning and the read."""
    created = stack.client.create({"name": "Fresh", "filters": filters(person_leaf("plan", "pro"))})
    got = stack.client.cohort(created["id"])
    assert (got["name"], got["filters"], got["pending_version"]) == ("Fresh", created["filters"], 1)
    assert created["id"] in [c["id"] for c in stack.client.ok("GET", "cohorts/")["results"]]

    patched = stack.client.patch(created["id"], {"name": "Renamed", "filters": filters(person_leaf("plan", "free"))})
    got = stack.client.cohort(created["id"])
    assert got["name"] == "Renamed"
    assert got["filters"] == patched["filters"]
    assert got["filters"]["properties"]["values"][0]["value"] == "free"
    assert got["pending_version"] == 2

    static = stack.client.create({"name": "List", "is_static": True})
    assert stack.client.cohort(static["id"])["is_static"] is True


def test_every_kind_of_cohort_converges_to_the_reference(population: Stack) -> None:
    """Scenario: person-property, behavioral, cohort-reference, (empty) static and a dynamic cohort
    that references the static one; count and persons/ must equal the reference."""
    client = population.client
    pro = client.create({"name": "Pro", "filters": filters(person_leaf("plan", "pro"))})["id"]
    viewed = client.create({"name": "Viewed", "filters": filters(performed("$pageview"))})["id"]
    both = client.create({"name": "Pro viewers", "filters": filters(in_cohort(pro), in_cohort(viewed))})["id"]
    listed = client.create({"name": "VIPs", "is_static": True})["id"]
    either = filters(in_cohort(listed), person_leaf("plan", "enterprise"), kind="OR")
    vip_or_enterprise = client.create({"name": "VIP or enterprise", "filters": either})["id"]
    members = population.wait_converged(pro, viewed, both, listed, vip_or_enterprise)

    people = population.people
    assert members[pro] == {people[n] for n in ("ann", "cat", "fay", "ida")}
    assert members[viewed] == {people[n] for n in ("ann", "cat", "eve", "kim", "ida")}
    assert members[both] == {people[n] for n in ("ann", "cat", "ida")}
    assert members[listed] == set()
    assert members[vip_or_enterprise] == {people["dan"], people["gus"]}
    body = client.cohort(viewed)
    assert body["is_calculating"] is False and body["version"] == 1 and body["last_calculation"] is not None


def test_editing_a_definition_moves_members_and_adds_a_calculation_history_row(population: Stack) -> None:
    client = population.client
    cohort = client.create({"name": "Plan", "filters": filters(person_leaf("plan", "pro"))})["id"]
    population.wait_converged(cohort)
    history = eventually(
        lambda: (h := client.ok("GET", f"cohorts/{cohort}/calculation_history/"))["count"] == 1 and h, CONVERGE_S
    )
    assert history["results"][0]["count"] == 4 and history["results"][0]["is_completed"] is True

    client.patch(cohort, {"filters": filters(person_leaf("plan", "enterprise"))})
    members = population.wait_converged(cohort)
    assert members[cohort] == {population.people["dan"], population.people["gus"]}

    def second_row() -> dict | None:
        h = client.ok("GET", f"cohorts/{cohort}/calculation_history/")
        return h if h["count"] == 2 and h["results"][0]["is_completed"] else None

    history = eventually(second_row, CONVERGE_S, lambda: population.logs())
    newest, oldest = history["results"]
    assert newest["count"] == 2 and oldest["count"] == 4
    assert newest["filters"]["properties"]["values"][0]["value"] == "enterprise"
    assert newest["started_at"] >= oldest["started_at"]
    assert client.cohort(cohort)["version"] == 2


def test_static_add_and_remove_move_a_dynamic_cohort_that_references_it(population: Stack) -> None:
    client, people = population.client, population.people
    listed = client.create({"name": "Beta testers", "is_static": True})["id"]
    # Members of the static list who viewed a page: only the worker can answer that.
    viewers = client.create({"name": "Beta viewers", "filters": filters(in_cohort(listed), performed("$pageview"))})[
        "id"
    ]
    population.wait_converged(listed, viewers)

    path = f"cohorts/{listed}/add_persons_to_static_cohort/"
    for name in ("eve", "bob"):  # the api may not have folded a person yet: retry until it has
        eventually(
            lambda name=name: client.call("PATCH", path, json={"person_ids": [people[name]]}).status_code == 200,
            CONVERGE_S,
        )
    population.inputs.static_members[listed] = {people["eve"], people["bob"]}
    assert client.cohort(listed)["count"] == 2  # the static count follows at once
    members = population.wait_converged(listed, viewers)
    assert members[viewers] == {people["eve"]}

    response = client.call(
        "PATCH", f"cohorts/{listed}/remove_person_from_static_cohort/", json={"person_id": people["eve"]}
    )
    assert response.status_code == 200, response.text
    population.inputs.static_members[listed] = {people["bob"]}
    assert client.cohort(listed)["count"] == 1
    members = population.wait_converged(listed, viewers)
    assert members[viewers] == set()


def test_duplicate_as_static_copies_the_current_members_and_stays_frozen(population: Stack) -> None:
    client, inputs = population.client, population.inputs
    source = client.create({"name": "Readers", "filters": filters(performed("$pageview"))})["id"]
    members = population.wait_converged(source)[source]

    copy = client.ok("GET", f"cohorts/{source}/duplicate_as_static_cohort/")
    assert copy["is_static"] is True and copy["name"] == "Readers (static copy)"
    assert copy["count"] == len(members)
    assert {p["id"] for p in client.all_persons(copy["id"])} == members

    newcomer = population.new_person(now_us(), plan="free")
    inputs.event(newcomer, "$pageview", now_us())
    inputs.flush()
    inputs.static_members[copy["id"]] = set(members)
    grown = population.wait_converged(source, copy["id"])
    assert grown[source] == members | {newcomer}
    assert grown[copy["id"]] == members


def test_soft_delete_empties_the_cohorts_count_and_persons(population: Stack) -> None:
    client = population.client
    cohort = client.create({"name": "Doomed", "filters": filters(person_leaf("plan", "free"))})["id"]
    assert population.wait_converged(cohort)[cohort]

    client.patch(cohort, {"deleted": True})
    assert client.cohort(cohort)["deleted"] is True  # still retrievable after a soft delete
    assert population.wait_converged(cohort)[cohort] == set()
    assert cohort not in [c["id"] for c in client.ok("GET", "cohorts/")["results"]]


def test_persons_are_newest_first_with_ten_distinct_ids_filters_search_and_csv(population: Stack) -> None:
    client, people = population.client, population.people
    cohort = client.create({"name": "Viewers", "filters": filters(performed("$pageview"))})["id"]
    members = population.wait_converged(cohort)[cohort]
    served = client.all_persons(cohort)

    # Newest person record first (id breaks ties); a person without a record comes last.
    expected_order = sorted(members, key=lambda p: (population.created_at.get(p, -1), p), reverse=True)
    assert [p["id"] for p in served] == expected_order
    assert served[-1]["id"] == people["kim"] and served[-1]["properties"] == {} and served[-1]["created_at"] is None
    by_id = {p["id"]: p for p in served}
    ann = by_id[people["ann"]]
    assert len(ann["distinct_ids"]) == 10
    assert set(ann["distinct_ids"]) <= {f"ann-device-{n:02d}" for n in range(12)}
    assert ann["properties"] == {"plan": "pro", "email": "ann@acme.com"} and ann["name"] == "ann@acme.com"
    assert by_id[people["cat"]]["distinct_ids"] == ["cat-laptop"]

    pro_filter = orjson.dumps([{"key": "plan", "value": "pro", "type": "person"}]).decode()
    filtered = client.all_persons(cohort, properties=pro_filter)
    pro_members = {people["ann"], people["cat"], people["ida"]}
    assert [p["id"] for p in filtered] == [p for p in expected_order if p in pro_members]
    searched = client.all_persons(cohort, search="ACME")
    assert {p["id"] for p in searched} == {people["ann"], people["ida"]}

    response = client.call("GET", f"cohorts/{cohort}/persons/", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["id"] for row in rows] == expected_order
    assert {row["email"] for row in rows if row["email"]} == {"ann@acme.com", "cat@example.org", "ida@acme.com"}


def test_persons_pages_skip_no_member_while_new_members_enter(population: Stack) -> None:
    """Scenario: persons/ is walked two at a time while, between pages, a new (newest) person
    enters the cohort. Entering above the cursor can only repeat a row, never skip one; pages keep
    the order; a walk after the changes equals one big page."""
    client, inputs = population.client, population.inputs
    cohort = client.create({"name": "Paged", "filters": filters(performed("paged_view"))})["id"]
    population.wait_calculated(cohort)  # a new matcher starts from empty history (no backfill)
    start = now_us() - 10 * DAY_US
    originals = [population.new_person(start + n * 1_000_000, plan="free") for n in range(7)]
    for person_id in originals:
        inputs.event(person_id, "paged_view", now_us() - HOUR_US)
    inputs.flush()
    population.wait_converged(cohort)

    seen: list[str] = []
    offset, limit = 0, 2
    while True:
        page = client.persons_page(cohort, limit=limit, offset=offset)
        ids = [p["id"] for p in page["results"]]
        created = [population.created_at[p] for p in ids]
        assert created == sorted(created, reverse=True)
        seen.extend(ids)
        if page["next"] is None:
            break
        offset += limit
        newcomer = population.new_person(now_us(), plan="free")
        inputs.event(newcomer, "paged_view", now_us())
        inputs.flush()
        eventually(lambda n=newcomer: n in {p["id"] for p in client.all_persons(cohort)}, CONVERGE_S)

    assert len(seen) > len(set(seen)), "members entered during the walk, so some row is served twice"
    assert set(originals) <= set(seen)
    members = population.wait_converged(cohort)[cohort]
    full = [p["id"] for p in client.all_persons(cohort, limit=1000)]
    walked = [p["id"] for p in client.all_persons(cohort, limit=3)]
    assert walked == full and set(full) == members
