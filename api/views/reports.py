"""Calculation history, folded from `cohort_calculation_reports` (design §3, reference §7).

The worker reports per partition per cohort version. One calculation = one (cohort, version):
it started at the earliest reported `started_at`, it is finished once every partition
(`settings.partitions`) reported a `finished_at` for that version (finished at the latest one),
its `count` is the sum of the partitions' counts and its `error` the first error reported.

Derived cohort fields (reference §1.0, §5.1): `version` = the newest completed calculation,
`last_calculation` its finish time, `errors_calculating` = consecutive failed calculations
counted back from the newest completed one, `last_error_message` = the friendly text of the
newest calculation with an error.

Layout:
    rep:<team>:<cohort>:<version>:<partition>  -> the partition's latest report
    calc:<team>:<cohort>:<version>             -> {version, started_at_us, finished_at_us, count, error, partitions}
    calcvers:<team>:<cohort>                   -> sorted versions that have a `calc` row
    calcstatus:<team>:<cohort>                 -> the derived fields above, raw error code (a summary)

The summary is recomputed from the cohort's `calc` rows (through the batch, so rows folded
earlier in the same batch count) whenever one of them changes, so a list of cohorts reads one
key per cohort instead of scanning its history. A cohort without a summary (no report yet, or a
data dir folded before summaries existed) is read with the scan, which gives the same answer.

A partition's report replaces an earlier one unless that one had finished and the new one has
not (a late "started" never reopens a finished partition). Replays change nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from api.store import Batch, Store, key
from cohorts.timestamps import format_iso, parse_timestamp
from cohorts.wire import CalculationReport

__all__ = ["CalculationStatus", "ReportsView", "apply_report", "friendly_error", "render_history_row"]

_FRIENDLY: dict[str, str] = {
    "timeout": "Cohort calculation was terminated for taking too long.",
    "memory_limit": "Cohort calculation used too much memory. Try simplifying the matching criteria.",
    "capacity": "The service was at capacity while calculating this cohort. It will be retried.",
    "interrupted": "Cohort calculation was interrupted. It will be retried.",
    "query_size": "This cohort's definition is too large to calculate.",
    "validation_error": "This cohort's definition could not be validated.",
    "invalid_regex": "This cohort uses an invalid regular expression.",
    "incompatible_types": "This cohort compares values of incompatible types.",
    "no_properties": "This cohort has no matching criteria.",
    "flag_changed": "The feature flag this cohort was built from changed.",
    "input_unavailable": "The input of this cohort's calculation is no longer available.",
    "unknown": (
        "An error occurred while calculating this cohort. Please review your matching criteria or contact support."
    ),
}


def friendly_error(error: str | None) -> str | None:
    """Reference §5.4: a known code becomes its fixed sentence; other text is shown as it is."""
    if not error:
        return None
    return _FRIENDLY.get(error, error)


def apply_report(batch: Batch, raw: bytes | None, partitions: int) -> None:
    if raw is None:
        return
    report = CalculationReport.from_bytes(raw)
    for name in ("team_id", "cohort_id", "version", "partition"):
        value = getattr(report, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
    if report.count is not None and (not isinstance(report.count, int) or isinstance(report.count, bool)):
        raise ValueError("count must be an integer")
    started_us = parse_timestamp(report.started_at)
    finished_us = parse_timestamp(report.finished_at) if report.finished_at else None
    rep_key = key("rep", report.team_id, report.cohort_id, report.version, report.partition)
    current = batch.get(rep_key)
    if current is not None and current["finished_at_us"] is not None and finished_us is None:
        return
    new = {
        "partition": report.partition,
        "started_at_us": started_us,
        "finished_at_us": finished_us,
        "count": report.count,
        "error": report.error,
    }
    if current == new:
        return
    batch.put(rep_key, new)
    _aggregate(batch, report.team_id, report.cohort_id, report.version, partitions)


def _aggregate(batch: Batch, team_id: int, cohort_id: int, version: int, partitions: int) -> None:
    rows = [batch.get(key("rep", team_id, cohort_id, version, p)) for p in range(partitions)]
    rows = [r for r in rows if r is not None]
    if not rows:
        return
    finished = [r for r in rows if r["finished_at_us"] is not None]
    complete = len(finished) == partitions
    errors = [r["error"] for r in sorted(rows, key=lambda r: r["partition"]) if r["error"]]
    batch.put(
        key("calc", team_id, cohort_id, version),
        {
            "cohort_key": f"{team_id}:{cohort_id}",
            "version": version,
            "started_at_us": min(r["started_at_us"] for r in rows),
            "finished_at_us": max(r["finished_at_us"] for r in finished) if complete else None,
            "count": sum(r["count"] or 0 for r in rows),
            "error": errors[0] if errors else None,
            "partitions": sorted(r["partition"] for r in finished),
        },
    )
    _summarise(batch, team_id, cohort_id, version)


def _summarise(batch: Batch, team_id: int, cohort_id: int, version: int) -> None:
    """Recompute the cohort's `calcstatus` after its `calc` row of `version` changed."""
    versions_key = key("calcvers", team_id, cohort_id)
    versions = batch.get(versions_key)
    if versions is None or version not in versions:
        if versions is None:  # first summary of this cohort: its committed history, if any
            versions = [row["version"] for _, row in batch.store.scan(key("calc", team_id, cohort_id) + b":")]
        versions = sorted({*versions, version})
        batch.put(versions_key, versions)
    calcs = [batch.get(key("calc", team_id, cohort_id, v)) for v in versions]
    batch.put(ReportsView.summary_key(team_id, cohort_id), _summary([c for c in calcs if c is not None]))


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The derived fields of a cohort's calculations (see the module docstring), error as its code."""
    rows = sorted(rows, key=lambda r: (r["started_at_us"], r["version"]), reverse=True)
    completed = sorted((r for r in rows if r["finished_at_us"] is not None), key=lambda r: r["version"])
    errors = 0
    for row in reversed(completed):
        if not row["error"]:
            break
        errors += 1
    with_error = next((r for r in rows if r["error"]), None)
    newest = completed[-1] if completed else None
    return {
        "version": newest["version"] if newest else None,
        "last_calculation_us": newest["finished_at_us"] if newest else None,
        "errors_calculating": errors,
        "last_error": with_error["error"] if with_error else None,
        "count": newest["count"] if newest else None,
    }


def _status_of(summary: dict[str, Any]) -> CalculationStatus:
    return CalculationStatus(
        version=summary["version"],
        last_calculation_us=summary["last_calculation_us"],
        errors_calculating=summary["errors_calculating"],
        last_error_message=friendly_error(summary["last_error"]),
        count=summary["count"],
    )


@dataclass(frozen=True, slots=True)
class CalculationStatus:
    version: int | None = None
    last_calculation_us: int | None = None
    errors_calculating: int = 0
    last_error_message: str | None = None
    count: int | None = None


class ReportsView:
    def __init__(self, store: Store) -> None:
        self._store = store

    def calculations(self, team_id: int, cohort_id: int) -> list[dict[str, Any]]:
        """Every calculation of the cohort, newest `started_at` first."""
        rows = [row for _, row in self._store.scan(key("calc", team_id, cohort_id) + b":")]
        rows.sort(key=lambda r: (r["started_at_us"], r["version"]), reverse=True)
        return rows

    def status(self, team_id: int, cohort_id: int) -> CalculationStatus:
        return self.status_of(team_id, cohort_id, self._store.get(self.summary_key(team_id, cohort_id)))

    @staticmethod
    def summary_key(team_id: int, cohort_id: int) -> bytes:
        return key("calcstatus", team_id, cohort_id)

    def status_of(self, team_id: int, cohort_id: int, summary: dict[str, Any] | None) -> CalculationStatus:
        """The status a cohort's stored summary (at `summary_key`, decoded) describes."""
        if summary is None:  # no report yet, or folded before summaries existed
            rows = self.calculations(team_id, cohort_id)
            return _status_of(_summary(rows)) if rows else CalculationStatus()
        return _status_of(summary)


def render_history_row(calc: dict[str, Any], filters: dict[str, Any] | None) -> dict[str, Any]:
    """One calculation as the API shows it (reference §7). No queries run here, so the query
    totals are zero and `main_query` is null."""
    finished = calc["finished_at_us"]
    duration = None if finished is None else (finished - calc["started_at_us"]) / 1_000_000
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cohort-calculation:{calc.get('cohort_key', '')}:{calc['version']}")),
        "filters": filters,
        "count": calc["count"],
        "started_at": format_iso(calc["started_at_us"]),
        "finished_at": None if finished is None else format_iso(finished),
        "queries": [],
        "error": friendly_error(calc["error"]),
        "duration_seconds": duration,
        "is_completed": finished is not None,
        "is_successful": finished is not None and not calc["error"],
        "total_query_ms": 0,
        "total_memory_mb": 0,
        "total_read_rows": 0,
        "total_written_rows": 0,
        "main_query": None,
        "main_query_id": None,
    }
