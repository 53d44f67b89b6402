"""A rebalance while a worker works through a batch of recalculations.

Scenario: worker A holds 20,000 persons in 4 partitions. While it is paused (SIGSTOP), 40 cohorts
are written to the catalog; when it resumes, it turns them into 160 `recalculate` messages and takes
them in batches, 16 cohorts to a scan. A second worker B joins meanwhile, so a rebalance begins
while A is inside a batch: A finishes the step under way and hands the rest of the batch back
unacknowledged (stream.agents.control `_hand_back`), and whoever owns each partition afterwards
reads those messages again. Every cohort ends with exactly one started and one finished report per
partition, the right counts and the right members: nothing lost, nothing done twice.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from cohorts.topics import Topics
from cohorts.wire import CalculationReport
from tests.integration.worker_harness import TopicReader, WorkerProcess, members, posthog_person, produce, start_worker
from tests.reliability.harness import NOW
from tests.unit.stream.cohort_records import group, person_prop, record

pytestmark = [pytest.mark.kafka, pytest.mark.reliability]

PARTITIONS = 4
TEAM = 5
PERSONS = 20_000
COUNTRIES = ("DE", "US", "FR")
#: person id -> (plan, country, age)
PEOPLE = {f"p{n}": ("pro" if n % 2 else "free", COUNTRIES[n % 3], n % 50) for n in range(PERSONS)}
#: cohort id -> (country, minimum age exclusive)
NEW = {100 + k: (COUNTRIES[k % 3], k) for k in range(40)}


def _expected(cohort_id: int) -> set[str]:
    country, age = NEW[cohort_id]
    return {p for p, (_, c, a) in PEOPLE.items() if c == country and a > age}


def test_a_rebalance_inside_a_batch_of_recalculations_loses_and_repeats_none(
    make_topics, make_settings, kafka_bootstrap: str, tmp_path: Path
):
    topics: Topics = make_topics(PARTITIONS)

    def worker(name: str) -> WorkerProcess:
        (tmp_path / name).mkdir()
        return start_worker(
            make_settings(topics, tmp_path / name / "state"), tmp_path / name, now_us=NOW, tick_interval_s=1.0
        )

    a = worker("a")
    live = [a]
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    try:
        everyone = group(person_prop("plan", "pro"), person_prop("plan", "free"), type_="OR")
        produce(kafka_bootstrap, topics.catalog, [(b"1", record(1, everyone, team_id=TEAM))])
        produce(
            kafka_bootstrap,
            topics.persons,
            [(p.encode(), posthog_person(TEAM, p, 1, plan=pl, country=c, age=ag)) for p, (pl, c, ag) in PEOPLE.items()],
        )
        flips.wait_for(lambda ms: len(members(ms, TEAM).get(1, ())) == PERSONS, 300)

        definitions = [
            (
                str(c).encode(),
                record(c, group(person_prop("country", country), person_prop("age", age, "gt")), team_id=TEAM),
            )
            for c, (country, age) in NEW.items()
        ]
        os.kill(a.process.pid, signal.SIGSTOP)
        try:
            produce(kafka_bootstrap, topics.catalog, definitions)
        finally:
            os.kill(a.process.pid, signal.SIGCONT)
        time.sleep(1)
        live.append(worker("b"))

        def calculated(ms: list) -> bool:
            found = {CalculationReport.from_bytes(v or b"") for _, v in ms}
            done = {(r.cohort_id, r.partition) for r in found if r.cohort_id in NEW and r.finished_at}
            return len(done) == len(NEW) * PARTITIONS

        reports.wait_for(calculated, 600)
        time.sleep(3)  # anything repeated would come now
        reports.poll(1)
        found = [CalculationReport.from_bytes(v or b"") for _, v in reports.messages]
        found = [r for r in found if r.cohort_id in NEW]
        every = {(c, p): 1 for c in NEW for p in range(PARTITIONS)}
        assert dict(Counter((r.cohort_id, r.partition) for r in found if r.finished_at is None)) == every
        assert dict(Counter((r.cohort_id, r.partition) for r in found if r.finished_at is not None)) == every
        counts = Counter()
        for r in found:
            if r.finished_at is not None:
                assert r.error is None
                counts[r.cohort_id] += r.count or 0
        assert {c: counts[c] for c in NEW} == {c: len(_expected(c)) for c in NEW}
        flips.wait_for(lambda ms: all(members(ms, TEAM).get(c, set()) == _expected(c) for c in NEW), 120)
        handed_back = [line for line in a.log().splitlines() if "handed back" in line]
        assert handed_back, "the rebalance did not come inside a batch: the scenario needs more work per batch"
    finally:
        flips.close()
        reports.close()
        for w in live:
            w.stop()
