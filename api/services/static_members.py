"""Static-cohort membership rules (reference §1.9, §1.10, §3): who may be added, and how.

Order of one change (a `Publisher.write` on the cohort, design §2):
1. Check the request in PostHog's order, with its texts, on views caught up with Kafka.
2. In one Kafka transaction: `static_add` / `static_remove` control messages keyed `team:person`
   (the worker folds them into the person record, design §3), the api-log `static_members`
   record (every api process folds it into its static list) and the activity entry.
3. Answer once this process applied them.
A failure at 2 changes nothing (503); another process writing the same cohort at the same time
makes step 1 run again on its result.

"Persons of the team" are the persons the persons view has seen (design §1).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from api.api_log import ApiLogRecord, static_member_records
from api.errors import kafka_errors, not_found, validation
from api.publisher import Changes, ControlEnvelope, Publisher, Reserve, control_for_person
from api.services.activity import ActivityLog
from api.services.csv_import import CsvIds
from api.views.cohorts import CohortReader
from api.views.persons import PersonsView
from cohorts.evaluate import evaluate
from cohorts.model import BehavioralLeaf, CohortDefinition, Group, iter_leaves, referenced_cohort_ids
from cohorts.wire import ControlMessage

__all__ = ["MAX_PERSON_IDS", "StaticMembers"]

#: PostHog's DEFAULT_COHORT_INSERT_BATCH_SIZE (reference §1.9).
MAX_PERSON_IDS = 1000

_ACTION_CHANGES = [{"type": "Cohort", "action": "changed", "field": None, "before": None, "after": None}]


class _Properties:
    """The evaluator's view of a person the api knows: properties only (no events)."""

    def __init__(self, properties: dict[str, Any]) -> None:
        self.properties = properties

    def buckets(self, matcher_hash: str, granularity: str) -> dict[int, int]:
        return {}

    def first_seen_us(self, matcher_hash: str) -> int | None:
        return None

    def timestamps_us(self, matcher_hash: str) -> list[int]:
        return []

    def is_static_member(self, cohort_id: int) -> bool:
        return False


class StaticMembers:
    def __init__(
        self,
        reader: CohortReader,
        persons: PersonsView,
        publisher: Publisher,
        activity: ActivityLog,
    ) -> None:
        self._reader = reader
        self._persons = persons
        self._publisher = publisher
        self._activity = activity

    # Resolution ------------------------------------------------------------------------------
    def resolve_person_ids(self, team_id: int, person_ids: Iterable[Any]) -> list[str]:
        """Ids of existing persons of the team, de-duplicated, in request order."""
        found: list[str] = []
        seen: set[str] = set()
        for person_id in person_ids:
            if isinstance(person_id, str) and person_id not in seen and self._persons.exists(team_id, person_id):
                seen.add(person_id)
                found.append(person_id)
        return found

    def resolve_csv(self, team_id: int, ids: CsvIds) -> tuple[list[str], int, int]:
        """`(person ids, ids supplied, ids unmatched)` of an uploaded CSV (reference §3.2)."""
        matched: list[str] = []
        seen: set[str] = set()
        unmatched = 0
        for value in ids.values:
            if ids.kind == "person_id":
                people = [value] if self._persons.exists(team_id, value) else []
            elif ids.kind == "distinct_id":
                person = self._persons.by_distinct_id(team_id, value)
                people = [] if person is None else [person]
            else:
                people = self._persons.by_email(team_id, value)
            if not people:
                unmatched += 1
            for person in people:
                if person not in seen:
                    seen.add(person)
                    matched.append(person)
        return matched, len(ids.values), unmatched

    def materialise(self, team_id: int, root: Group, rows: dict[int, dict[str, Any]], now_us: int) -> list[str]:
        """Reference §3.1 step 4: a static cohort created with criteria is filled once, now, with
        the known persons who match. Only person-property and cohort criteria can be decided here
        (the api holds no event history), so behavioural criteria are refused."""
        if any(isinstance(leaf, BehavioralLeaf) for leaf in iter_leaves(root)):
            raise validation(
                "A static cohort can be filled from person-property and cohort criteria only. "
                "For behavioral criteria, create a dynamic cohort and duplicate it as static.",
                "filters",
            )
        definition = CohortDefinition(id=0, team_id=team_id, version=1, root=root)
        referenced = [rows[i] for i in referenced_cohort_ids(root) if i in rows]
        members = []
        for record in self._persons.all(team_id):
            person_id = record["id"]
            memberships = {row["id"]: self._reader.is_member(row, person_id) for row in referenced}
            if evaluate(definition, _Properties(record["properties"]), now_us, memberships).member:
                members.append(person_id)
        return members

    # Changes ---------------------------------------------------------------------------------
    @staticmethod
    def changes(
        team_id: int, cohort_id: int, *, added: list[str] = (), removed: list[str] = ()
    ) -> tuple[list[ControlEnvelope], list[ApiLogRecord]]:
        """The control messages (for the worker) and api-log records (for every api process) of
        one membership change (step 2)."""
        envelopes = [
            control_for_person(ControlMessage(type=kind, team_id=team_id, cohort_id=cohort_id, person_id=person))
            for kind, people in (("static_add", added), ("static_remove", removed))
            for person in people
        ]
        return envelopes, list(static_member_records(team_id, cohort_id, added=list(added), removed=list(removed)))

    # Endpoints -------------------------------------------------------------------------------
    def add_persons(self, team_id: int, cohort_id: int, user: dict[str, Any], body: Any) -> None:
        def added(row: dict[str, Any]) -> dict[str, list[str]]:
            if not row["is_static"]:
                raise validation("Can only add users to static cohorts")
            person_ids = body.get("person_ids") if isinstance(body, dict) else None
            if not isinstance(person_ids, list):
                raise validation("person_ids must be a list")
            if not person_ids:
                raise validation("person_ids cannot be empty")
            if len(person_ids) > MAX_PERSON_IDS:
                raise validation("List size exceeds limit")
            valid = self.resolve_person_ids(team_id, person_ids)
            if not valid:
                raise validation("No valid users to add to cohort")
            return {"added": [p for p in valid if not self._reader.is_member(row, p)]}

        self._write_members(team_id, cohort_id, user, "persons_added_manually", added)

    def remove_person(self, team_id: int, cohort_id: int, user: dict[str, Any], body: Any) -> None:
        def removed(row: dict[str, Any]) -> dict[str, list[str]]:
            if not row["is_static"]:
                raise validation("Can only remove users from static cohorts")
            person_id = body.get("person_id") if isinstance(body, dict) else None
            if person_id is None or person_id == "":
                raise validation("person_id is required")
            if not isinstance(person_id, str):
                raise validation("person_id must be a string")
            try:
                uuid.UUID(person_id)
            except ValueError:
                raise validation("person_id must be a valid UUID") from None
            if not self._persons.exists(team_id, person_id):
                raise not_found("Person with this UUID does not exist in the cohort's team")
            return {"removed": [person_id] if self._reader.is_member(row, person_id) else []}

        self._write_members(team_id, cohort_id, user, "person_removed_manually", removed)

    def _write_members(
        self,
        team_id: int,
        cohort_id: int,
        user: dict[str, Any],
        activity: str,
        members: Callable[[dict[str, Any]], dict[str, list[str]]],
    ) -> None:
        """One transaction: the membership change `members(row)` names (it validates the request
        against the current row and raises the api's errors) and its activity entry."""

        def build(reserve: Reserve) -> Changes:
            row = self._reader.row(team_id, cohort_id)
            if row is None:
                raise not_found()
            control, records = self.changes(team_id, cohort_id, **members(row))
            entry = self._activity.record(
                team_id=team_id,
                item_id=cohort_id,
                user=user,
                activity=activity,
                changes=_ACTION_CHANGES,
                name=row["name"],
            )
            return Changes(control=control, log=[*records, entry])

        with kafka_errors():
            self._publisher.write(build, cohort_id=cohort_id)
