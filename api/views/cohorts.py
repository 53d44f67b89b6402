"""Reading cohorts: stored rows, their effective definitions and their public shape (reference §1.0).

A row is what the api stored at its last write; the fields that come from calculations
(`count`, `version`, `is_calculating`, `last_calculation`, `errors_calculating`,
`last_error_message`) are derived at read time from the reports and membership views
(design §3), so they move as the worker reports without the api rewriting the row.

Definitions: the effective `filters` of a row are its stored filters, else its legacy `groups`
converted (reference §2.8), else `{"properties": {}}`. A parsed root is cached per
(team, id, catalog version): rows are immutable per version.

Rows are folded from `cohort_catalog` (`apply_catalog`): `services.cohorts` builds a row,
`catalog_record` turns it into the record it produces, and the fold turns the record back into
the same row in every api process. A record applies only if its version is newer than the
row's, so a replay (or a restart that re-reads) changes nothing. Keys that are not a decimal
cohort id (id reservations) are skipped; a tombstone removes the cohort, as compaction would.

Row layout:
    cohort:<team>:<id>  -> {id, team_id, name, description, groups, deleted, filters, query,
                            is_static, cohort_type, created_by_id, created_at_us, version,
                            create_in_folder, last_import_total_count, last_import_unmatched_count}
    cohortteam:<id>     -> team id (a tombstone carries no team)
    catver:<team>:<id>:<version> -> effective filters of that version (calculation history)
    cohortcount:<static|dynamic> -> non-deleted cohorts of every project (metrics)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from api.auth_db import AuthDirectory
from api.schemas.common import user_basic
from api.store import Batch, Store, key
from api.views.membership import MembershipView
from api.views.record import Record
from api.views.reports import CalculationStatus, ReportsView
from api.views.static_members import StaticMembersView
from cohorts.legacy_groups import groups_to_filters
from cohorts.model import BehavioralLeaf, CohortLeaf, Group, PersonLeaf, iter_leaves
from cohorts.timestamps import format_iso
from cohorts.validate import FilterError, has_criteria, parse_filters
from cohorts.vocab import ANALYTICAL_KINDS
from cohorts.wire import CatalogRecord

__all__ = [
    "CohortReader",
    "ProjectRows",
    "apply_catalog",
    "catalog_record",
    "effective_filters",
    "put_version_filters",
    "row_of",
]

_LIFECYCLE_KINDS = frozenset(ANALYTICAL_KINDS) - {"performed_event_sequence"}
_CACHE_LIMIT = 20_000
#: Projects whose rows `CohortReader.listed` keeps (the cache is dropped whole beyond this).
_PROJECTS_CACHED = 1_000
_ROW_PREFIX = b"cohort:"
#: Every key a rendered cohort reads besides its row: the calculation summary (`calc:` rows when
#: there is none) and the member count (`api.views.reports`, `membership`, `static_members`).
_RENDERED_PREFIXES = (_ROW_PREFIX, b"calcstatus:", b"calc:", b"memcount:", b"staticcount:")


class ProjectRows(NamedTuple):
    """A project's cohorts: all of them by id (deleted ones too), and the live ones in list order."""

    by_id: dict[int, dict[str, Any]]
    live: list[dict[str, Any]]


def _list_order(row: dict[str, Any]) -> tuple[int, int]:
    """Newest first (`-created_at`, then `-id`) when sorted in reverse (reference §1.1)."""
    return row["created_at_us"], row["id"]


def effective_filters(row: dict[str, Any]) -> dict[str, Any]:
    """What `filters` reads as, never null (reference §1.0)."""
    if row.get("filters"):
        return row["filters"]
    if row.get("groups"):
        return groups_to_filters(row["groups"])
    return {"properties": {}}


def catalog_record(row: dict[str, Any]) -> CatalogRecord:
    """The catalog record of a row: the effective definition for the worker, the rest for the
    other api processes (`row_of` is its inverse)."""
    effective = effective_filters(row)
    return CatalogRecord(
        id=row["id"],
        team_id=row["team_id"],
        version=row["version"],
        is_static=row["is_static"],
        deleted=row["deleted"],
        name=row["name"],
        filters=effective,
        description=row["description"],
        groups=row["groups"],
        query=row["query"],
        cohort_type=row["cohort_type"],
        created_by_id=row["created_by_id"],
        created_at_us=row["created_at_us"],
        create_in_folder=row.get("create_in_folder"),
        last_import_total_count=row.get("last_import_total_count"),
        last_import_unmatched_count=row.get("last_import_unmatched_count"),
        stored_filters=None if row["filters"] == effective else row["filters"],
    )


def row_of(record: CatalogRecord, appended_at_us: int) -> dict[str, Any]:
    """The row a catalog record describes. A record from before the api-visible fields existed
    takes its creation time from the record's Kafka timestamp."""
    return {
        "id": record.id,
        "team_id": record.team_id,
        "name": record.name,
        "description": record.description,
        "groups": record.groups,
        "deleted": record.deleted,
        "filters": record.filters if record.stored_filters is None else record.stored_filters,
        "query": record.query,
        "is_static": record.is_static,
        "cohort_type": record.cohort_type,
        "created_by_id": record.created_by_id,
        "created_at_us": appended_at_us if record.created_at_us is None else record.created_at_us,
        "version": record.version,
        "create_in_folder": record.create_in_folder,
        "last_import_total_count": record.last_import_total_count,
        "last_import_unmatched_count": record.last_import_unmatched_count,
    }


def put_version_filters(batch: Batch, team_id: int, cohort_id: int, version: int, filters: dict[str, Any]) -> None:
    batch.put(key("catver", team_id, cohort_id, version), filters)


def _cohort_id(record_key: bytes | None) -> int | None:
    if record_key is None or not record_key.isdigit() or len(record_key) > 18:
        return None
    return int(record_key)


def _count(batch: Batch, row: dict[str, Any] | None, delta: int) -> None:
    if row is None or row["deleted"]:
        return
    count_key = key("cohortcount", "static" if row["is_static"] else "dynamic")
    batch.put(count_key, max(0, int(batch.get(count_key) or 0) + delta))


_ROW_TYPES: dict[str, tuple[type, ...]] = {
    "team_id": (int,),
    "version": (int,),
    "is_static": (bool,),
    "deleted": (bool,),
    "name": (str, type(None)),
    "description": (str,),
    "filters": (dict,),
    "groups": (list,),
    "cohort_type": (str, type(None)),
    "created_by_id": (int, type(None)),
    "created_at_us": (int, type(None)),
}


def apply_catalog(batch: Batch, record: Record) -> None:
    """Fold one `cohort_catalog` record (see the module docstring); raises WireError /
    ValueError for a malformed one."""
    cohort_id = _cohort_id(record.key)
    if cohort_id is None:
        return
    team_key = key("cohortteam", cohort_id)
    team_id = batch.get(team_key)
    current = None if team_id is None else batch.get(key("cohort", team_id, cohort_id))
    if record.value is None:
        if current is not None:
            _count(batch, current, -1)
            batch.delete(key("cohort", team_id, cohort_id))
            batch.delete(team_key)
        return
    catalog = CatalogRecord.from_bytes(record.value)
    if catalog.id != cohort_id:
        raise ValueError(f"record id {catalog.id} under key {cohort_id}")
    for name, types in _ROW_TYPES.items():
        value = getattr(catalog, name)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"{name} has the wrong type")
    if catalog.team_id < 0 or catalog.version < 1:
        raise ValueError("team_id must not be negative and version must be positive")
    if current is None:  # a row stored before the team index existed
        current = batch.get(key("cohort", catalog.team_id, cohort_id))
    if current is not None and current["version"] >= catalog.version:
        return
    row = row_of(catalog, record.timestamp_ms * 1000)
    _count(batch, current, -1)
    _count(batch, row, 1)
    batch.put(team_key, catalog.team_id)
    batch.put(key("cohort", catalog.team_id, cohort_id), row)
    put_version_filters(batch, catalog.team_id, cohort_id, catalog.version, catalog.filters)


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
        self._listed: dict[int, tuple[int, ProjectRows]] = {}
        # Pure functions of immutable inputs, memoised because every listed row needs them.
        self._condition_types: dict[tuple[int, int, int], dict[str, bool] | None] = {}
        self._isos: dict[int, str] = {}
        self._input_keys: dict[tuple[int, int, bool], tuple[bytes | None, bytes]] = {}
        self._rendered: dict[tuple[Any, ...], dict[str, Any]] = {}
        for prefix in _RENDERED_PREFIXES:
            store.watch(prefix)

    # Rows --------------------------------------------------------------------------------------
    def row(self, team_id: int, cohort_id: int) -> dict[str, Any] | None:
        if cohort_id <= 0 or cohort_id >= 1 << 63:
            return None
        return self._store.get(key("cohort", team_id, cohort_id))

    def rows(self, team_id: int) -> dict[int, dict[str, Any]]:
        """Every cohort of the project, deleted ones included, by id."""
        return {row["id"]: row for _, row in self._store.scan(key("cohort", team_id) + b":")}

    def listed(self, team_id: int) -> ProjectRows:
        """Every cohort of the project, and the non-deleted ones in list order, from a per-project
        cache that the next write of any cohort row drops (`Store.generation`). The rows are shared
        between requests: callers must not change them."""
        generation = self._store.generation(_ROW_PREFIX)
        cached = self._listed.get(team_id)
        if cached is not None and cached[0] == generation:
            return cached[1]
        by_id = self.rows(team_id)
        live = sorted((row for row in by_id.values() if not row["deleted"]), key=_list_order, reverse=True)
        listed = ProjectRows(by_id, live)
        if len(self._listed) >= _PROJECTS_CACHED:
            self._listed.clear()
        self._listed[team_id] = (generation, listed)
        return listed

    def render_token(self) -> tuple[Any, ...]:
        """A value that changes whenever a rendered cohort could change: after a write under any
        key it reads (`_RENDERED_PREFIXES`) or to the auth database (its creator). Note it before
        reading: what was rendered from the reads is current for as long as it is unchanged
        (`Store.generation` moves only once a write is visible)."""
        return (*(self._store.generation(prefix) for prefix in _RENDERED_PREFIXES), self._auth.stamp())

    def version_filters(self, team_id: int, cohort_id: int, version: int) -> dict[str, Any] | None:
        return self._store.get(key("catver", team_id, cohort_id, version))

    def counts(self) -> dict[str, int]:
        """Non-deleted cohorts of every project, by type (`static`, `dynamic`)."""
        return {kind: int(self._store.get(key("cohortcount", kind)) or 0) for kind in ("static", "dynamic")}

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

    def _condition_type(self, row: dict[str, Any]) -> dict[str, bool] | None:
        """`condition_type`, memoised per (team, id, version): rows are immutable per version.
        The returned dict is shared: it is only ever serialised."""
        cache_key = (row["team_id"], row["id"], row["version"])
        if cache_key not in self._condition_types:
            if len(self._condition_types) >= _CACHE_LIMIT:
                self._condition_types.clear()
            self._condition_types[cache_key] = self.condition_type(row)
        return self._condition_types[cache_key]

    def iso(self, epoch_us: int) -> str:
        """`format_iso`, memoised: a list renders the same creation and calculation times again."""
        text = self._isos.get(epoch_us)
        if text is None:
            if len(self._isos) >= _CACHE_LIMIT:
                self._isos.clear()
            text = self._isos[epoch_us] = format_iso(epoch_us)
        return text

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.render_many([row])[0]

    def render_many(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`render` of each row, in order.

        The rows' calculation summaries and member counts are read in one multi-get, as bytes. A
        row whose inputs (its version, those bytes and the auth stamp) are the ones it was last
        rendered from is served as it was rendered then; only the others are decoded and
        rendered. A member flip thus re-renders one cohort of a list page, not a hundred. The
        returned dicts are shared between requests: copy one before changing it."""
        stamp = self._auth.stamp()
        input_keys = [self._input_keys_of(row) for row in rows]
        raws = iter(self._store.get_many_raw([k for pair in input_keys for k in pair if k is not None]))
        creators: dict[int, dict[str, Any] | None] = {}
        out = []
        for row, (summary_key, _) in zip(rows, input_keys, strict=True):
            summary = None if summary_key is None else next(raws)
            count = next(raws)
            memo_key = (row["team_id"], row["id"], row["version"], summary, count, stamp)
            rendered = self._rendered.get(memo_key)
            if rendered is None:
                rendered = self._render_from(row, summary, count, creators)
                if summary is not None or row["is_static"]:  # a status read by the scan is not kept
                    if len(self._rendered) >= _CACHE_LIMIT:
                        self._rendered.clear()
                    self._rendered[memo_key] = rendered
            out.append(rendered)
        return out

    def _input_keys_of(self, row: dict[str, Any]) -> tuple[bytes | None, bytes]:
        """The keys of a row's calculation summary (none for a static cohort) and member count."""
        cache_key = (row["team_id"], row["id"], row["is_static"])
        keys = self._input_keys.get(cache_key)
        if keys is None:
            team_id, cohort_id = row["team_id"], row["id"]
            if row["is_static"]:
                keys = (None, key("staticcount", team_id, cohort_id))
            else:
                keys = (self._reports.summary_key(team_id, cohort_id), key("memcount", team_id, cohort_id))
            if len(self._input_keys) >= _CACHE_LIMIT:
                self._input_keys.clear()
            self._input_keys[cache_key] = keys
        return keys

    def _render_from(
        self,
        row: dict[str, Any],
        summary: bytes | None,
        count: bytes | None,
        creators: dict[int, dict[str, Any] | None],
    ) -> dict[str, Any]:
        status = None
        if not row["is_static"]:
            status = self._reports.status_of(
                row["team_id"], row["id"], None if summary is None else orjson.loads(summary)
            )
        creator_id = row.get("created_by_id")
        if creator_id is not None and creator_id not in creators:
            creators[creator_id] = user_basic(self._auth.user(creator_id))
        creator = None if creator_id is None else creators[creator_id]
        return self._render(row, status, None if count is None else orjson.loads(count), creator)

    def _render(
        self, row: dict[str, Any], status: CalculationStatus | None, stored_count: Any, creator: dict[str, Any] | None
    ) -> dict[str, Any]:
        cohort_id = row["id"]
        if status is None:
            version = pending = last_calculation = last_error = None
            is_calculating, errors, count = False, 0, int(stored_count or 0)
        else:
            version, pending = status.version, row["version"]
            is_calculating = not row["deleted"] and (status.version or 0) < row["version"]
            last_calculation = None if status.last_calculation_us is None else self.iso(status.last_calculation_us)
            errors, last_error = status.errors_calculating, status.last_error_message
            count = None if status.version is None else int(stored_count or 0)
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
            "created_by": creator,
            "created_at": self.iso(row["created_at_us"]),
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
            "condition_type": self._condition_type(row),
            "experiment_set": [],
        }
