"""Writes whose transaction fails around another process's fence (api/publisher.py, step 4).

Kafka 4.1.1 answers UNKNOWN_SERVER_ERROR to an EndTxn(commit) that races another process's
InitProducerId for the same transactional id, and then aborts the transaction; a commit whose
answer is lost has the same error on the client but was applied. The api must tell the two
apart: answer the first after running the write again, the second at once, and never apply a
PATCH twice nor answer 503 for either. A producer fenced in the middle of a write (its records
refused with `_FATAL`), or before its id reservation is acknowledged, runs the write again too.

Each case is injected into a real transactional producer against the real broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from api.publisher import PublishError
from cohorts.topics import Topics
from cohorts.wire import CatalogRecord
from tests.integration.api_harness import Running, read_topic, running_api, write_retries

pytestmark = pytest.mark.kafka


class Wrapped:
    """A real transactional producer; subclasses change one of its calls."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


class FailingCommit(Wrapped):
    """A real transactional producer whose first commit delivers every record, runs `before` on
    the real producer, then fails with a fatal UNKNOWN error, as librdkafka reports Kafka's
    UNKNOWN_SERVER_ERROR."""

    def __init__(self, producer: Any, transactional_id: str, armed: list[bool], before: Callable) -> None:
        super().__init__(producer)
        self._transactional_id = transactional_id
        self._armed = armed
        self._before = before

    def commit_transaction(self, timeout: float) -> None:
        if not self._armed[0]:
            return self._producer.commit_transaction(timeout)
        self._armed[0] = False
        self._producer.flush(timeout)  # as librdkafka does before it asks for the commit
        self._before(self._producer, self._transactional_id)
        raise KafkaException(KafkaError(KafkaError.UNKNOWN, "Unknown broker error (injected)", fatal=True))


def commit_then_lose_the_answer(producer: Any, _: str) -> None:
    producer.commit_transaction(10)


def fence_from_another_process(bootstrap: str) -> Callable[[Any, str], None]:
    def fence(_: Any, transactional_id: str) -> None:
        Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id}).init_transactions(10)

    return fence


class FencedMidWrite(Wrapped):
    """A real transactional producer that another process fences right after the first record
    of a write. The second record is refused by the broker, which makes the producer fatal; the
    third is refused by librdkafka with `_FATAL`, an error that does not name the fence."""

    def __init__(self, producer: Any, fence: Callable[[], None], produced: list[int]) -> None:
        super().__init__(producer)
        self._fence = fence
        self._produced = produced

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self._producer.produce(*args, **kwargs)
        self._produced[0] += 1
        if self._produced[0] == 1:
            self._fence()
        elif self._produced[0] == 2:
            time.sleep(1)  # its refusal arrives (in ~50 ms here); flush() would raise SystemError


def fail_next_commit(api: Running, before: Callable) -> None:
    publisher = api.ctx.publisher
    make = publisher._transactional
    armed = [True]
    publisher._transactional = lambda tid: FailingCommit(make(tid), tid, armed, before)


def cohort_versions(api: Running, cohort_id: int, expect: int) -> list[int]:
    catalog = Topics(api.settings.topic_prefix, api.settings.partitions).catalog
    messages = read_topic(api.settings.bootstrap, catalog, 1, expect=expect, timeout_s=5)
    return [CatalogRecord.from_bytes(m.value()).version for m in messages if m.key() == str(cohort_id).encode()]


@pytest.fixture
def api(make_topics, make_settings, tmp_path: Path):
    topics = make_topics(partitions=1)
    with running_api(make_settings(topics, tmp_path / "data")) as running:
        yield running


def test_a_commit_kafka_applied_but_answered_with_an_error_is_answered_200_once(api: Running) -> None:
    cohort = api.create(name="shared")
    fail_next_commit(api, commit_then_lose_the_answer)

    body = api.ok("PATCH", f"cohorts/{cohort['id']}/", json={"description": "edited"})

    assert (body["description"], body["pending_version"]) == ("edited", 2)
    assert write_retries(api) == 0
    # The reservation, its tombstone, the create and one update: nothing was written twice.
    assert cohort_versions(api, cohort["id"], expect=5) == [1, 2]


def test_a_commit_refused_while_another_process_fences_the_producer_is_run_again(api: Running) -> None:
    cohort = api.create(name="shared")
    fail_next_commit(api, fence_from_another_process(api.settings.bootstrap))

    body = api.ok("PATCH", f"cohorts/{cohort['id']}/", json={"description": "edited"})

    assert (body["description"], body["pending_version"]) == ("edited", 2)
    assert write_retries(api) == 1
    assert cohort_versions(api, cohort["id"], expect=5) == [1, 2]
    updates = api.ok("GET", f"cohorts/{cohort['id']}/activity/")["results"]
    assert [entry["activity"] for entry in updates].count("updated") == 1


def test_a_failed_commit_kafka_cannot_be_asked_about_answers_outcome_unknown(api: Running) -> None:
    cohort = api.create(name="shared")
    publisher = api.ctx.publisher
    reachable = publisher._transactional

    def unreachable(transactional_id: str) -> Any:
        raise PublishError(f"Kafka did not initialise producer {transactional_id}: injected")

    fail_next_commit(api, lambda *_: setattr(publisher, "_transactional", unreachable))

    response = api.call("PATCH", f"cohorts/{cohort['id']}/", json={"description": "edited"})

    assert response.status_code == 503 and response.json()["code"] == "outcome_unknown"
    # Kafka back: the next write to the cohort fences the failed producer, which aborts its
    # transaction (it never asked for the commit), so that PATCH is the cohort's version 2.
    publisher._transactional = reachable
    body = api.ok("PATCH", f"cohorts/{cohort['id']}/", json={"description": "again"})
    assert (body["description"], body["pending_version"]) == ("again", 2)
    assert cohort_versions(api, cohort["id"], expect=5) == [1, 2]


def test_a_producer_fenced_in_the_middle_of_a_write_runs_the_write_again(api: Running) -> None:
    cohort = api.create(name="shared")
    publisher = api.ctx.publisher
    make = publisher._transactional
    produced = [0]
    transactional_id = f"{api.settings.topic_prefix}cohorts-api-cohort-{cohort['id']}"
    fence = lambda: fence_from_another_process(api.settings.bootstrap)(None, transactional_id)  # noqa: E731
    publisher._transactional = lambda tid: FencedMidWrite(make(tid), fence, produced)

    body = api.ok("PATCH", f"cohorts/{cohort['id']}/", json={"description": "edited"})

    assert (body["description"], body["pending_version"]) == ("edited", 2)
    assert write_retries(api) == 1
    assert cohort_versions(api, cohort["id"], expect=5) == [1, 2]


class FencedBeforeTheFirstRecord(Wrapped):
    """A real transactional producer that another process fences just before the first record of
    a write: that record's delivery fails and the producer turns fatal while the api waits for it."""

    def __init__(self, producer: Any, fence: Callable[[], None], armed: list[bool]) -> None:
        super().__init__(producer)
        self._fence = fence
        self._armed = armed

    def produce(self, *args: Any, **kwargs: Any) -> None:
        if self._armed[0]:
            self._armed[0] = False
            self._fence()
        self._producer.produce(*args, **kwargs)


def test_a_create_whose_producer_is_fenced_before_its_reservation_is_acknowledged_runs_again(api: Running) -> None:
    publisher = api.ctx.publisher
    make = publisher._transactional
    armed = [True]
    fence = fence_from_another_process(api.settings.bootstrap)
    publisher._transactional = lambda tid: FencedBeforeTheFirstRecord(make(tid), lambda: fence(None, tid), armed)
    publisher._creator = None  # the next create initialises the instance's producer through the wrapper

    created = api.create(name="after the fence")

    assert write_retries(api) == 1
    assert api.ok("GET", f"cohorts/{created['id']}/")["name"] == "after the fence"
