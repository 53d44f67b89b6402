"""`cohorts backfill` / `cohorts replay` against a real worker: past events counted once, exactly.

Scenario shared by the tests: persons did `checkout` while no cohort used it (ingest gated the
events out), then a cohort on `checkout` was created, then more checkouts arrived live. Only a
backfill can make the cohort exact; running it again, or replaying the project, must change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_process import cohorts, env_for
from tests.integration.test_worker_membership import DAY, NOW, Env, _start_env
from tests.integration.worker_harness import members, posthog_event, statuses
from tests.unit.stream.cohort_records import group, in_cohort, performed, performed_multiple, record

pytestmark = pytest.mark.kafka

TEAM = 7
SIGNUP, CHECKOUT_TWICE, REFERS = 71, 72, 73
#: Checkouts per person before the cohort existed, and after (live).
PAST = {"p1": 3, "p2": 2, "p3": 1, "p4": 1, "p5": 2, "p6": 0}
LIVE = {"p1": 1, "p3": 1, "p6": 2}


def expected_twice() -> set[str]:
    return {p for p in PAST if PAST[p] + LIVE.get(p, 0) == 2}


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from _start_env(kafka_bootstrap, tmp_path_factory.mktemp("backfill"))


def cli_env(env: Env, tmp_path: Path) -> dict[str, str]:
    return env_for(
        tmp_path,
        kafka_bootstrap=env.bootstrap,
        topic_prefix=env.topics.prefix,
        partitions=env.topics.partitions,
    )


def checkouts(persons: dict[str, int], team: int = TEAM, hours_ago: int = 30) -> list[dict]:
    return [
        posthog_event(team, person, "checkout", NOW - hours_ago * 3_600_000_000 - n * 60_000_000, n=n)
        for person, times in persons.items()
        for n in range(times)
    ]


def test_backfill_counts_gated_history_once_and_a_second_run_changes_nothing(env: Env, tmp_path: Path):
    env.write_cohort(SIGNUP, record(SIGNUP, group(performed("signup", 30)), team_id=TEAM))
    env.wait_calculated(SIGNUP, 1)
    env.events(*[posthog_event(TEAM, p, "signup", NOW - 3 * DAY) for p in PAST], *checkouts(PAST))
    env.events(*checkouts({"p2": 5}, team=TEAM + 1))  # another team's history: never sent
    env.wait_members(TEAM, {SIGNUP: set(PAST)})

    twice = record(CHECKOUT_TWICE, group(performed_multiple("checkout", "eq", 2)), team_id=TEAM)
    env.write_cohort(CHECKOUT_TWICE, twice)
    env.write_cohort(REFERS, record(REFERS, group(in_cohort(CHECKOUT_TWICE)), team_id=TEAM))
    env.wait_calculated(CHECKOUT_TWICE, 1)
    env.wait_calculated(REFERS, 1)
    env.events(*checkouts(LIVE, hours_ago=2))
    live_only = {p for p, n in LIVE.items() if n == 2}
    env.wait_members(TEAM, {CHECKOUT_TWICE: live_only, REFERS: live_only})

    done = cohorts("backfill", str(CHECKOUT_TWICE), "--wait", "60", env=cli_env(env, tmp_path))
    assert done.returncode == 0, done.stderr
    sent = sum(PAST.values()) + sum(LIVE.values())  # every matching event is sent; the fold skips live ones
    assert f"sent {sent}," in done.stdout, done.stdout
    assert f"cohorts [{CHECKOUT_TWICE}]" in done.stdout and "the worker has folded them" in done.stdout
    assert "ETA" in done.stderr  # the progress bar
    expected = expected_twice()
    assert expected == {"p2", "p3", "p5", "p6"}
    env.wait_members(TEAM, {CHECKOUT_TWICE: expected, REFERS: expected})

    flips_before = len(env.flips.messages)
    again = cohorts("backfill", str(CHECKOUT_TWICE), "--wait", "60", env=cli_env(env, tmp_path))
    assert again.returncode == 0, again.stderr
    replay = cohorts("replay", "--project", str(TEAM), "--from-offset", "0", "--wait", "60", env=cli_env(env, tmp_path))
    assert replay.returncode == 0, replay.stderr
    assert f"cohorts [{SIGNUP}, {CHECKOUT_TWICE}, {REFERS}]" in replay.stdout
    env.flips.poll(1.0)
    assert members(env.flips.messages, TEAM) == {SIGNUP: set(PAST), CHECKOUT_TWICE: expected, REFERS: expected}
    # A replayed backfill input re-sends its outbox suffix in order (design §5): repeats that end
    # on the current state, never a change of it.
    final = statuses(env.flips.messages, TEAM)
    assert statuses(env.flips.messages[:flips_before], TEAM) == final
    resent = statuses(env.flips.messages[flips_before:], TEAM)
    assert all(final[key] == status for key, status in resent.items())


def test_backfill_from_a_time_reads_only_what_came_after_it(env: Env, tmp_path: Path):
    """An absolute --from-time later than every event reads nothing and sends nothing."""
    result = cohorts(
        "backfill", str(SIGNUP), "--from-time", "2099-01-01T00:00:00Z", "--wait", "5", env=cli_env(env, tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "read 0 events" in result.stdout and "sent 0," in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backfill", "999999"), "cohort 999999 is not in the catalog"),
        (("backfill", "1", "--from-time", "soon"), "--from-time"),
        (("backfill", "1", "--from-time", "-1d", "--from-offset", "3"), "not both"),
        (("replay", "--project", "424242"), "project 424242 has no live dynamic cohort"),
    ],
)
def test_impossible_requests_fail_with_one_line(env: Env, tmp_path: Path, args: tuple[str, ...], message: str):
    result = cohorts(*args, env=cli_env(env, tmp_path))
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
