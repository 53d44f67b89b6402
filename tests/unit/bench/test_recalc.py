"""The in-process recalculation benchmark runs end to end at a tiny size, and its modes agree.

It reads the person store's internals through a stand-in for faust's table, so a change to
`PersonStore` that the stand-in does not follow breaks this test rather than the next benchmark run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.recalc import NEW_COHORTS, run

SIZE = {"persons": 600, "partitions": 4, "templates": 60, "template_events": 180, "full_sample": None}


def _rows(out: str) -> dict[tuple[str, str], list[int]]:
    """(cohort, mode) -> [persons, folded, written, members] of the printed table."""
    found = {}
    for line in out.splitlines():
        for name in NEW_COHORTS:
            if line.startswith(f"{name} "):
                fields = line[len(name) :].split()
                numbers = [int(f.replace(",", "")) for f in fields[1:] if f.replace(",", "").isdigit()]
                found[(name, fields[0])] = [numbers[0], *numbers[-3:]]
    return found


def test_fast_and_full_recalculation_find_the_same_members(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(modes=["full", "fast"], work_dir=tmp_path, **SIZE)
    rows = _rows(capsys.readouterr().out)
    assert len(rows) == 2 * len(NEW_COHORTS)
    for name in NEW_COHORTS:
        full, fast = rows[(name, "full")], rows[(name, "fast")]
        assert full[0] == fast[0] == 600  # every person visited
        assert full[3] == fast[3]  # members
        assert fast[1] == fast[2]  # fast writes exactly what it folds
    assert all(rows[(name, "fast")][3] > 0 for name in NEW_COHORTS)


def test_partitions_shared_among_processes_give_what_one_process_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(modes=["fast"], work_dir=tmp_path / "one", **SIZE)
    alone = _rows(capsys.readouterr().out)
    run(modes=["fast"], work_dir=tmp_path / "two", processes=2, **SIZE)
    shared = _rows(capsys.readouterr().out)
    assert shared == alone
    assert len(shared) == len(NEW_COHORTS)


def test_announcing_every_cohort_again_visits_every_person_per_run_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(modes=["fast"], work_dir=tmp_path, reannounce=True, **SIZE)
    found = re.search(
        r"^every cohort\s+again\s+([\d,]+) .* ([\d,]+)\s+([\d,]+)\s+\((\d+) cohorts in (\d+) runs",
        capsys.readouterr().out,
        re.MULTILINE,
    )
    assert found is not None
    persons, folded, written, cohorts, runs = (int(g.replace(",", "")) for g in found.groups())
    assert (cohorts, runs) == (103, 7)  # the 100 active cohorts and the 3 new ones, 16 to a run
    assert persons == 600 * runs  # every person once per run
    assert folded == written == 0  # every record was already evaluated with every cohort
