"""Reading cohorts: stored rows, their effective definitions and their public shape (reference §1.0).

A row is what the api stored at its last write; the fields that come from calculations
(`count`, `version`, `is_calculating`, `last_calculation`, `errors_calculating`,
`last_error_message`) are derived at read time from the reports and membership views
(design §3), so they move as the worker reports without the api rewriting the row.

Definitions: the effective `filters` of a row are its stored filters, else its legacy `groups`
converted (reference §2.8), else `{"properties": {}}`. A parsed root is cached per
(team, id, catalog version): rows are immutable per version.

Row layout (written by `services.cohorts`):
    cohort:<team>:<id>  -> {id, team_id, name, description, groups, deleted, filters, query,
                            is_static, cohort_type, created_by_id, created_at_us, version,
                            create_in_folder, last_import_total_count, last_import_unmatched_count}
    catver:<team>:<id>:<version> -> effective filters of that version (calculation history)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from api.auth_db import AuthDirectory
from api.schemas.common import user_basic
from api.store import Store, key
from api.views.membership import MembershipView
from api.views.reports import ReportsView
from api.views.static_members import StaticMembersView
from cohorts.legacy_groups import groups_to_filters
from cohorts.model import BehavioralLeaf, CohortLeaf, Group, PersonLeaf, iter_leaves
from cohorts.timestamps import format_iso
from cohorts.validate import FilterError, has_criteria, parse_filters
from cohorts.vocab import ANALYTICAL_KINDS

__all__ = ["CohortReader", "effective_filters"]

_LIFECYCLE_KINDS = frozenset(ANALYTICAL_KINDS) - {"performed_event_sequence"}
_CACHE_LIMIT = 20_000


def effective_filters(row: dict[str, Any]) -> dict[str, Any]:
    """What `filters` reads as, never null (reference §1.0)."""
    if row.get("filters"):
        return row["filters"]
    if row.get("groups"):
        return groups_to_filters(row["groups"])
    return {"properties": {}}


class CohortReader:
    def __init__(
        self,
        store: Store,
        auth: AuthDirectory,
        reports: ReportsView,
        membership: MembershipView,
        static_members: StaticMembersView,
    ) -> None:
        self._store = store
        self._auth = auth
        self._reports = reports
        self._membership = membership
        self._static = static_members
        self._roots: dict[tuple[int, int, int], Group | None] = {}
        self._roots_lock = threading.Lock()

    # Rows --------------------------------------------------------------------------------------
    def row(self, team_id: int, cohort_id: int) -> dict[str, Any] | None:
        if cohort_id <= 0 or cohort_id >= 1 << 63:
            return None
        return self._store.get(key("cohort", team_id, cohort_id))

    def rows(self, team_id: int) -> dict[int, dict[str, Any]]:
        """Every cohort of the project, deleted ones included, by id."""
        return {row["id"]: row for _, row in self._store.scan(key("cohort", team_id) + b":")}

    def version_filters(self, team_id: int, cohort_id: int, version: int) -> dict[str, Any] | None:
        return self._store.get(key("catver", team_id, cohort_id, version))

    # Definitions -------------------------------------------------------------------------------
    def parsed(self, row: dict[str, Any]) -> Group | None:
        """The parsed effective definition (static cohorts included), None without criteria."""
        cache_key = (row["team_id"], row["id"], row["version"])
        with self._roots_lock:
            if cache_key in self._roots:
                return self._roots[cache_key]
        filters = effective_filters(row)
        try:
            root = parse_filters(filters) if has_criteria(filters) else None
        except FilterError:
            root = None
        with self._roots_lock:
            if len(self._roots) >= _CACHE_LIMIT:
                self._roots.clear()
            self._roots[cache_key] = root
        return root

    def root(self, row: dict[str, Any]) -> Group | None:
        """The definition that decides membership: None for static cohorts (a materialised list)."""
        return None if row["is_static"] else self.parsed(row)

    def root_lookup(self, rows: dict[int, dict[str, Any]]) -> Callable[[int], Group | None]:
        def lookup(cohort_id: int) -> Group | None:
            row = rows.get(cohort_id)
            return None if row is None else self.root(row)

        return lookup

    def type_lookup(self, rows: dict[int, dict[str, Any]]) -> Callable[[int], tuple[bool, Group | None] | None]:
        def lookup(cohort_id: int) -> tuple[bool, Group | None] | None:
            row = rows.get(cohort_id)
            return None if row is None else (row["is_static"], self.root(row))

        return lookup

    # Members -----------------------------------------------------------------------------------
    def members(self, row: dict[str, Any]) -> list[str]:
        if row["is_static"]:
            return self._static.members(row["team_id"], row["id"])
        return self._membership.members(row["team_id"], row["id"])

    def is_member(self, row: dict[str, Any], person_id: str) -> bool:
        if row["is_static"]:
            return self._static.is_member(row["team_id"], row["id"], person_id)
        return self._membership.is_member(row["team_id"], row["id"], person_id)

    # Public shape ------------------------------------------------------------------------------
    def condition_type(self, row: dict[str, Any]) -> dict[str, bool] | None:
        root = self.parsed(row)
        leaves = list(iter_leaves(root))
        if not leaves:
            return None
        behavioral = [leaf for leaf in leaves if isinstance(leaf, BehavioralLeaf)]
        return {
            "person_properties": any(isinstance(leaf, PersonLeaf) for leaf in leaves),
            "behavioral": any(leaf.kind not in _LIFECYCLE_KINDS for leaf in behavioral),
            "lifecycle": any(leaf.kind in _LIFECYCLE_KINDS for leaf in behavioral),
            "cohorts": any(isinstance(leaf, CohortLeaf) for leaf in leaves),
        }

    def render(self, row: dict[str, Any], *, in_list: bool = False) -> dict[str, Any]:
        team_id, cohort_id = row["team_id"], row["id"]
        if row["is_static"]:
            version = pending = last_calculation = last_error = None
            is_calculating, errors, count = False, 0, self._static.count(team_id, cohort_id)
        else:
            status = self._reports.status(team_id, cohort_id)
            version, pending = status.version, row["version"]
            is_calculating = not row["deleted"] and (status.version or 0) < row["version"]
            last_calculation = None if status.last_calculation_us is None else format_iso(status.last_calculation_us)
            errors, last_error = status.errors_calculating, status.last_error_message
            count = None if status.version is None else self._membership.count(team_id, cohort_id)
        creator = self._auth.user(row["created_by_id"]) if row.get("created_by_id") is not None else None
        return {
            "id": cohort_id,
            "name": row["name"],
            "description": row["description"],
            "groups": row["groups"],
            "deleted": row["deleted"],
            "filters": effective_filters(row),
            "query": row["query"],
            "version": version,
            "pending_version": pending,
            "is_calculating": is_calculating,
            "created_by": user_basic(creator),
            "created_at": format_iso(row["created_at_us"]),
            "last_calculation": last_calculation,
            "last_backfill_person_properties_at": None,
            "errors_calculating": errors,
            "last_error_message": last_error,
            "count": count,
            "last_import_total_count": row.get("last_import_total_count"),
            "last_import_unmatched_count": row.get("last_import_unmatched_count"),
            "population": None,
            "is_static": row["is_static"],
            "cohort_type": row["cohort_type"],
            "condition_type": self.condition_type(row),
            "experiment_set": [],
        }
