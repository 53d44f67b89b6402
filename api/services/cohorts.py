"""Cohort writes: the rules of create, update, soft delete and duplicate (reference §1.2-§1.5,
§1.12, §2, §3; design §8), and their publication to Kafka.

Each write is a `build` function run by `Publisher.write` (see `api.publisher` for the
transaction, the fencing of concurrent writers and read-your-writes):
1. Validate in PostHog's order (field validators in field order, then the create/update rules),
   so the first error a client sees is PostHog's first error, on views caught up with Kafka.
2. New cohort only: reserve its id (the catalog offset of a reservation, design §2).
3. Return the changes: the catalog record (the whole row; `version` = the row's + 1 on every
   change, and the worker turns a new version into `recalculate` messages), `static_add` for new
   static members with their api-log record, the version's filters and the activity entry.
4. The row is then read back from this process's views, as every api process will see it.
Nothing is written if Kafka refuses (503). An update that changes nothing writes nothing and
logs no activity (reference §6). Updates of one cohort are serialised across api processes, so
an update always applies to the latest committed row.

Never: read the worker's state; store an unvalidated dynamic definition; write the views
directly (they are folded from Kafka).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.api_log import DefinitionRecord
from api.errors import ApiError, kafka_errors, not_found, validation
from api.publisher import Changes, Publisher, Reserve
from api.schemas.cohort import CohortWrite
from api.services.activity import TRACKED_FIELDS, ActivityLog, changes_between
from api.services.csv_import import parse_csv
from api.services.static_members import StaticMembers
from api.views.cohorts import CohortReader, catalog_record, effective_filters
from cohorts.cohort_type import stored_cohort_type, validate_cohort_type
from cohorts.copy_query import parse_copy_query
from cohorts.graph import creates_loop, criteria_users, unknown_references
from cohorts.legacy_groups import validate_groups
from cohorts.model import CohortDefinition, Group
from cohorts.settings import Settings
from cohorts.validate import FilterError, has_criteria, normalise_filters, parse_filters

__all__ = ["CohortService", "WriteRequest"]


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """A parsed create/update body: the fields the client sent, and an uploaded CSV if any."""

    body: CohortWrite
    fields: frozenset[str]
    csv: bytes | None = None


def _filter_error(exc: FilterError) -> ApiError:
    return validation(exc.detail, exc.attr, exc.code)


def _names(rows: list[dict[str, Any]]) -> str:
    names = [row["name"] or "Unnamed" for row in rows[:5]]
    text = ", ".join(names)
    if len(rows) > 5:
        text += f", and {len(rows) - 5} more"
    return text


class CohortService:
    def __init__(
        self,
        settings: Settings,
        reader: CohortReader,
        publisher: Publisher,
        activity: ActivityLog,
        static_members: StaticMembers,
        clock: Callable[[], int],
    ) -> None:
        self._settings = settings
        self._reader = reader
        self._publisher = publisher
        self._activity = activity
        self._static = static_members
        self._clock = clock

    # Field validators (reference §2, in serializer field order) ----------------------------------
    def _filters_field(self, raw: Any, *, is_static: bool) -> tuple[dict[str, Any], Group | None]:
        """`(stored filters, root)`; a static cohort's criteria-less filters pass unvalidated (§2.1)."""
        if is_static and not has_criteria(raw):
            return ({"properties": {}} if isinstance(raw, dict) else {}), None
        try:
            return normalise_filters(raw), parse_filters(raw)
        except FilterError as exc:
            raise _filter_error(exc) from None

    def _query_field(self, raw: Any, rows: dict[int, dict[str, Any]]) -> tuple[Any, dict[str, Any] | None]:
        """`(query, source row)`; a falsy query means none (reference §1.2)."""
        if not raw:
            return None, None
        try:
            source_id, _ = parse_copy_query(raw)
        except FilterError as exc:
            raise _filter_error(exc) from None
        source = rows.get(source_id)
        if source is None:
            raise validation(f"Cohort {source_id} does not exist in this project.", "query")
        return raw, source

    def _definition_root(self, row: dict[str, Any]) -> Group | None:
        """The parsed effective definition of a row about to be stored; legacy groups that cannot
        be computed are refused here, at save (design §4)."""
        filters = effective_filters(row)
        if not has_criteria(filters):
            return None
        try:
            return parse_filters(filters)
        except FilterError as exc:
            raise validation(exc.detail, "filters" if row.get("filters") else "groups", exc.code) from None

    def _check_references(self, cohort_id: int | None, root: Group | None, rows: dict[int, dict[str, Any]]) -> None:
        if root is None:
            return
        if cohort_id is not None and creates_loop(cohort_id, root, self._reader.root_lookup(rows)):
            raise validation("Cohorts cannot reference other cohorts in a loop.")
        if unknown_references(root, set(rows)):
            raise validation("Invalid Cohort ID in filter")

    # Create --------------------------------------------------------------------------------------
    def create(self, team_id: int, user: dict[str, Any], request: WriteRequest) -> dict[str, Any]:
        body, fields = request.body, request.fields
        created: list[int] = []

        def build(reserve: Reserve) -> Changes:
            rows = self._reader.rows(team_id)
            is_static = body.is_static
            groups: list[Any] = []
            if "groups" in fields:
                try:
                    groups = validate_groups(body.groups)
                except FilterError as exc:
                    raise _filter_error(exc) from None
            filters: dict[str, Any] = {}
            root: Group | None = None
            if "filters" in fields:
                filters, root = self._filters_field(body.filters, is_static=is_static)
            query, source = self._query_field(body.query, rows)
            draft = {"filters": filters, "groups": groups, "is_static": is_static}
            definition = self._definition_root(draft) if not is_static else root
            try:
                validate_cohort_type(
                    body.cohort_type,
                    is_static=is_static,
                    has_query=query is not None,
                    root=definition,
                    lookup=self._reader.type_lookup(rows),
                )
            except FilterError as exc:
                raise _filter_error(exc) from None
            if query is not None and root is not None:
                raise validation("Cannot set both query and filters at the same time.")
            if not is_static and query is not None:
                raise validation("Cannot create a dynamic cohort with a query. Set is_static to true.")
            if request.csv is not None and not is_static:
                raise validation("A CSV upload is only supported for static cohorts.", "csv")
            self._check_references(None, None if is_static else definition, rows)
            cohort_type = (
                body.cohort_type
                if is_static
                else stored_cohort_type(is_static=False, provided=body.cohort_type or None, root=definition)
            )

            members: list[str] = []
            total = unmatched = None
            if is_static:
                if body.create_static_person_ids:
                    members = self._static.resolve_person_ids(team_id, body.create_static_person_ids)
                    total = len(body.create_static_person_ids)
                    unmatched = total - len(members)
                if request.csv is not None:
                    matched, total, unmatched = self._static.resolve_csv(team_id, parse_csv(request.csv))
                    members = _merge(members, matched)
                if source is not None:
                    members = _merge(members, self._reader.members(source))
                if root is not None:
                    self._check_references(None, root, rows)
                    members = _merge(members, self._static.materialise(team_id, root, rows, self._clock()))
            row = {
                "name": body.name,
                "description": body.description,
                "groups": groups,
                "deleted": body.deleted,
                "filters": filters,
                "query": query,
                "is_static": is_static,
                "cohort_type": cohort_type,
                "create_in_folder": body.create_in_folder,
                "last_import_total_count": total,
                "last_import_unmatched_count": unmatched,
            }
            return self._insert(reserve, created, team_id, user, row, members, log_created=True)

        with kafka_errors():
            self._publisher.write(build)
        return self._rendered(team_id, created[-1])

    def duplicate_as_static(self, team_id: int, cohort_id: int, user: dict[str, Any]) -> dict[str, Any]:
        """Reference §1.12 / design §8: a static copy of the source's current members."""
        created: list[int] = []

        def build(reserve: Reserve) -> Changes:
            source = self._reader.row(team_id, cohort_id)
            if source is None:
                raise not_found()
            if source["is_static"]:
                raise validation("Cannot duplicate a static cohort as a static cohort.")
            row = {
                "name": f"{source['name']} (static copy)",
                "description": "",
                "groups": [],
                "deleted": False,
                "filters": {},
                "query": None,
                "is_static": True,
                "cohort_type": None,
                "create_in_folder": None,
                "last_import_total_count": None,
                "last_import_unmatched_count": None,
            }
            members = self._reader.members(source)
            return self._insert(reserve, created, team_id, user, row, members, log_created=False)

        with kafka_errors():
            self._publisher.write(build)
        return self._rendered(team_id, created[-1])

    def _insert(
        self,
        reserve: Reserve,
        created: list[int],
        team_id: int,
        user: dict[str, Any],
        fields: dict[str, Any],
        members: list[str],
        *,
        log_created: bool,
    ) -> Changes:
        """The changes of a new cohort; its reserved id is appended to `created`."""
        cohort_id = reserve()
        created.append(cohort_id)
        row = {
            "id": cohort_id,
            "team_id": team_id,
            **fields,
            "created_by_id": user["id"],
            "created_at_us": self._clock(),
            "version": 1,
        }
        changes = self._row_changes(row)
        control, records = self._static.changes(team_id, cohort_id, added=members)
        changes.control.extend(control)
        changes.log.extend(records)
        if log_created:
            changes.log.append(
                self._activity.record(
                    team_id=team_id, item_id=cohort_id, user=user, activity="created", changes=None, name=row["name"]
                )
            )
        return changes

    # Update --------------------------------------------------------------------------------------
    def update(self, team_id: int, cohort_id: int, user: dict[str, Any], request: WriteRequest) -> dict[str, Any]:
        body, fields = request.body, request.fields

        def build(reserve: Reserve) -> Changes | None:
            rows = self._reader.rows(team_id)
            row = rows.get(cohort_id)
            if row is None:
                raise not_found()
            new = dict(row)
            is_static = body.is_static if "is_static" in fields else row["is_static"]
            if "groups" in fields:
                try:
                    validate_groups(body.groups)
                except FilterError as exc:
                    raise _filter_error(exc) from None
                new["groups"] = body.groups  # stored exactly as sent on update (reference §2.8)
            new_filters: dict[str, Any] | None = None
            if "filters" in fields:
                new_filters, _ = self._filters_field(body.filters, is_static=is_static)
            source = None
            if "query" in fields:
                new["query"], source = self._query_field(body.query, rows)
            for name in ("name", "description", "deleted"):
                if name in fields:
                    new[name] = getattr(body, name)
            new["is_static"] = is_static
            if new_filters is not None:
                edits_criteria = has_criteria(new_filters) or has_criteria(row["filters"])
                if is_static and new_filters != row["filters"] and edits_criteria:
                    raise validation(
                        "Editing the criteria of a static cohort is not supported yet. "
                        "Create a new static cohort instead."
                    )
                new["filters"] = new_filters
            definition = None if is_static else self._definition_root(new)
            if "cohort_type" in fields:
                try:
                    validate_cohort_type(
                        body.cohort_type,
                        is_static=is_static,
                        has_query=bool(new["query"]),
                        root=definition,
                        lookup=self._reader.type_lookup(rows),
                    )
                except FilterError as exc:
                    raise _filter_error(exc) from None
                new["cohort_type"] = body.cohort_type
            if not is_static and new_filters is not None:
                new["cohort_type"] = stored_cohort_type(is_static=False, provided=new["cohort_type"], root=definition)
            if not is_static and new["query"]:
                raise validation("Cannot create a dynamic cohort with a query. Set is_static to true.")
            if not row["deleted"] and new["deleted"]:
                self._check_not_used(team_id, cohort_id, rows)
            if not is_static:
                self._check_references(cohort_id, definition, rows)
            if request.csv is not None and not is_static:
                raise validation("A CSV upload is only supported for static cohorts.", "csv")

            members: list[str] = []
            if is_static:
                if request.csv is not None:
                    matched, total, unmatched = self._static.resolve_csv(team_id, parse_csv(request.csv))
                    members = matched
                    new["last_import_total_count"], new["last_import_unmatched_count"] = total, unmatched
                if source is not None:
                    members = _merge(members, self._reader.members(source))
                if not row["is_static"]:
                    # Freezing a dynamic cohort keeps the members it has now.
                    members = _merge(members, self._reader.members(row))
                members = [p for p in members if not self._reader.is_member({**row, "is_static": True}, p)]

            changes = changes_between(_tracked(row), _tracked(new))
            if not members and new == row:
                return None
            out = Changes()
            if new != row:
                new["version"] = row["version"] + 1
                out = self._row_changes(new)
            control, records = self._static.changes(team_id, cohort_id, added=members)
            out.control.extend(control)
            out.log.extend(records)
            if changes:
                activity = "updated"
                if not row["deleted"] and new["deleted"]:
                    activity = "deleted"
                elif row["deleted"] and not new["deleted"]:
                    activity = "restored"
                out.log.append(
                    self._activity.record(
                        team_id=team_id,
                        item_id=cohort_id,
                        user=user,
                        activity=activity,
                        changes=changes,
                        name=new["name"],
                    )
                )
            return out

        with kafka_errors():
            self._publisher.write(build, cohort_id=cohort_id)
        return self._rendered(team_id, cohort_id)

    def _check_not_used(self, team_id: int, cohort_id: int, rows: dict[int, dict[str, Any]]) -> None:
        """The only delete guard here (design §8): criteria of other non-deleted cohorts."""
        definitions = {
            other["id"]: CohortDefinition(
                id=other["id"],
                team_id=team_id,
                version=other["version"],
                is_static=other["is_static"],
                deleted=other["deleted"],
                root=self._reader.root(other),
                name=other["name"],
                filters=effective_filters(other),
            )
            for other in rows.values()
        }
        users = [rows[i] for i in criteria_users(cohort_id, definitions)]
        if users:
            raise validation(
                f"This cohort is used as criteria in {len(users)} other cohort(s): {_names(users)}. "
                "Please remove this cohort from those cohort definitions before deleting it."
            )

    # Kafka -------------------------------------------------------------------------------------
    @staticmethod
    def _row_changes(row: dict[str, Any]) -> Changes:
        """The catalog record of a new row version, and its filters for calculation history."""
        record = catalog_record(row)
        definition = DefinitionRecord(row["team_id"], row["id"], row["version"], record.filters)
        return Changes(catalog=[record], log=[definition])

    def _rendered(self, team_id: int, cohort_id: int) -> dict[str, Any]:
        """The row as this process's views hold it after the write (read-your-writes)."""
        row = self._reader.row(team_id, cohort_id)
        if row is None:
            raise not_found()
        return self._reader.render(row)


def _tracked(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row.get(name) for name in TRACKED_FIELDS}


def _merge(first: list[str], second: list[str]) -> list[str]:
    seen = set(first)
    out = list(first)
    for item in second:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
