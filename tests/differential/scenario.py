"""Random but reproducible cohort scenarios: definitions, persons, events and static members.

Used by the differential tests, which feed the same scenario to the incremental engine (the pure
fold, or the worker through Kafka) and to `cohorts.reference.reference_members`, then compare.
Every definition is validated with `cohorts.validate` first: the generator only emits what the api
would accept. Cohorts exist before any event arrives (state for a matcher is kept only from the
moment a cohort needs it, docs/design-engine.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from cohorts.model import CohortDefinition
from cohorts.reference import RawEvent, RawPerson
from cohorts.timestamps import format_iso, parse_timestamp
from cohorts.validate import FilterError, definition_from_record
from cohorts.wire import CatalogRecord

__all__ = ["NOW", "Scenario", "generate"]

NOW = parse_timestamp("2025-03-10 15:37:21.123456")
MINUTE = 60_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

EVENTS = ("$pageview", "signup", "purchase")
UNUSED_EVENTS = ("$autocapture", "$identify")
PATHS = ("/", "/pricing", "/docs", "/blog")
PLANS = ("free", "pro", "enterprise")


@dataclass
class Scenario:
    seed: int
    team_id: int
    records: list[CatalogRecord] = field(default_factory=list)
    events: list[RawEvent] = field(default_factory=list)
    persons: list[RawPerson] = field(default_factory=list)
    static_members: dict[int, set[str]] = field(default_factory=dict)

    def definitions(self) -> dict[int, CohortDefinition]:
        return {r.id: definition_from_record(r) for r in self.records}


def _behavioral(kind: str, event: str, **fields: Any) -> dict[str, Any]:
    leaf = {"type": "behavioral", "key": event, "value": kind, "event_type": "events"}
    leaf.update({k: v for k, v in fields.items() if v is not None})
    return leaf


def _window(rng: random.Random) -> dict[str, Any]:
    return rng.choice(
        [
            {"time_value": rng.choice([1, 3, 7, 30]), "time_interval": "day"},
            {"time_value": rng.choice([1, 2]), "time_interval": "week"},
            {"time_value": rng.choice([1, 6, 24]), "time_interval": "hour"},
            {"time_value": rng.choice([30, 90]), "time_interval": "minute"},
            {"time_value": 1, "time_interval": "month"},
        ]
    )


def _leaf(rng: random.Random, earlier: list[int]) -> dict[str, Any]:
    event = rng.choice(EVENTS)
    kind = rng.choice(
        [
            "performed_event",
            "performed_event",
            "performed_event_multiple",
            "performed_event_first_time",
            "performed_event_sequence",
            "performed_event_regularly",
            "stopped_performing_event",
            "restarted_performing_event",
            "explicit",
            "person",
            "person",
            "cohort",
        ]
    )
    negation = rng.random() < 0.2
    if kind == "performed_event":
        filters = None
        if rng.random() < 0.3:
            filters = [{"type": "event", "key": "path", "value": rng.choice(PATHS), "operator": "exact"}]
        leaf = _behavioral(kind, event, event_filters=filters, **_window(rng))
    elif kind == "performed_event_multiple":
        leaf = _behavioral(
            kind,
            event,
            operator=rng.choice(["gte", "lte", "eq", "gt", "lt", None]),
            operator_value=rng.randint(0, 4),
            **_window(rng),
        )
    elif kind == "performed_event_first_time":
        leaf = _behavioral(kind, event, **_window(rng))
    elif kind == "performed_event_sequence":
        leaf = _behavioral(
            kind,
            event,
            seq_event=rng.choice(EVENTS),
            seq_time_value=rng.choice([1, 2, 3]),
            seq_time_interval=rng.choice(["day", "hour"]),
            **_window(rng),
        )
    elif kind == "performed_event_regularly":
        total = rng.randint(2, 5)
        leaf = _behavioral(
            kind,
            event,
            time_value=rng.choice([1, 2, 3]),
            time_interval=rng.choice(["day", "week"]),
            total_periods=total,
            min_periods=rng.randint(1, total),
            operator_value=rng.choice([None, 1, 2]),
        )
    elif kind in ("stopped_performing_event", "restarted_performing_event"):
        leaf = _behavioral(
            kind,
            event,
            time_value=rng.choice([14, 30]),
            time_interval="day",
            seq_time_value=rng.choice([1, 3, 7]),
            seq_time_interval="day",
        )
    elif kind == "explicit":
        start = rng.choice(["-14d", "-48h", "-1w", format_iso(NOW - rng.randint(1, 40) * DAY)])
        extra = {}
        if rng.random() < 0.3:
            extra["explicit_datetime_to"] = rng.choice(["-1d", format_iso(NOW - rng.randint(0, 3) * DAY)])
        leaf = _behavioral("performed_event", event, explicit_datetime=start, **extra)
    elif kind == "person":
        leaf = _person_leaf(rng)
    else:
        if not earlier:
            return _person_leaf(rng)
        leaf = {"type": "cohort", "key": "id", "value": rng.choice(earlier)}
    leaf["negation"] = negation
    return leaf


def _person_leaf(rng: random.Random) -> dict[str, Any]:
    choice = rng.randrange(7)
    if choice == 0:
        return {"type": "person", "key": "plan", "operator": "exact", "value": rng.sample(PLANS, rng.randint(1, 2))}
    if choice == 1:
        return {"type": "person", "key": "plan", "operator": "is_not", "value": [rng.choice(PLANS)]}
    if choice == 2:
        return {
            "type": "person",
            "key": "age",
            "operator": rng.choice(["gt", "lt", "gte"]),
            "value": rng.randint(20, 50),
        }
    if choice == 3:
        return {"type": "person", "key": "email", "operator": "icontains", "value": rng.choice(["@acme", "@ex"])}
    if choice == 4:
        return {"type": "person", "key": "plan", "operator": rng.choice(["is_set", "is_not_set"])}
    if choice == 5:
        return {"type": "person", "key": "signup", "operator": "is_date_before", "value": rng.choice(["-30d", "-7d"])}
    return {"type": "person", "key": "signup", "operator": "is_date_after", "value": "-10d"}


def _filters(rng: random.Random, earlier: list[int]) -> dict[str, Any]:
    leaves = [_leaf(rng, earlier) for _ in range(rng.randint(1, 3))]
    inner = rng.choice(["AND", "OR"])
    return {"properties": {"type": "OR", "values": [{"type": inner, "values": leaves}]}}


def _person_properties(rng: random.Random, person_id: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if rng.random() < 0.85:
        props["plan"] = rng.choice(PLANS)
    if rng.random() < 0.8:
        props["age"] = rng.choice([rng.randint(18, 60), str(rng.randint(18, 60))])
    if rng.random() < 0.7:
        props["email"] = f"{person_id}@{rng.choice(['acme.com', 'example.org'])}"
    if rng.random() < 0.7:
        props["signup"] = format_iso(NOW - rng.randint(0, 60) * DAY - rng.randint(0, DAY))
    return props


def generate(seed: int, *, team_id: int = 1, persons: int = 24, events: int = 300, cohorts: int = 14) -> Scenario:
    rng = random.Random(seed)
    scenario = Scenario(seed=seed, team_id=team_id)
    base_id = team_id * 1_000
    ids: list[int] = []
    static_id = base_id + 999
    scenario.records.append(CatalogRecord(id=static_id, team_id=team_id, version=1, is_static=True))
    ids.append(static_id)
    while len(scenario.records) < cohorts:
        cohort_id = base_id + len(scenario.records)
        record = CatalogRecord(
            id=cohort_id,
            team_id=team_id,
            version=rng.randint(1, 3),
            name=f"c{cohort_id}",
            filters=_filters(rng, ids),
        )
        try:
            definition_from_record(record)
        except FilterError:
            continue
        scenario.records.append(record)
        ids.append(cohort_id)

    person_ids = [f"p{n:03d}" for n in range(persons)]
    for person_id in person_ids:
        if rng.random() < 0.8:
            updates = rng.randint(1, 3)
            for version in range(1, updates + 1):
                scenario.persons.append(RawPerson(team_id, person_id, _person_properties(rng, person_id), version * 10))
            if rng.random() < 0.25:  # an older version arriving late is ignored
                scenario.persons.append(RawPerson(team_id, person_id, _person_properties(rng, person_id), 5))
            if rng.random() < 0.08:
                scenario.persons.append(RawPerson(team_id, person_id, {}, updates * 10 + 1, is_deleted=True))
    scenario.static_members[static_id] = set(rng.sample(person_ids, persons // 4)) | {"never-seen"}

    for _ in range(events):
        person_id = rng.choice(person_ids)
        age = rng.choice([rng.randint(0, 90 * DAY), rng.randint(0, 3 * DAY), rng.randint(0, 2 * HOUR)])
        ts = NOW - age
        if rng.random() < 0.02:
            ts = NOW + rng.randint(0, 20_000_000)  # later than now, inside now's minute or just after
        name = rng.choice(EVENTS + UNUSED_EVENTS[:1]) if rng.random() < 0.9 else rng.choice(UNUSED_EVENTS)
        scenario.events.append(RawEvent(team_id, person_id, name, ts, {"path": rng.choice(PATHS)}))
    return scenario
