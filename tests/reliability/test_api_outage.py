"""Scenario 4, the api's side: the broker stops for a while; reads go on, writes are refused with a
clear 503 in bounded time, and after the broker returns writes succeed and nothing was lost.

Scenario: this test runs its own single-node broker (cli/local_kafka.py), because it stops it. An
api process (`python -m cli api`) serves one project with dynamic cohorts and a static cohort
whose members are persons read from `clickhouse_person`. The broker is stopped for
`RELIABILITY_OUTAGE_S` seconds (12 in CI, 30 on demand). Throughout the outage the test keeps
reading (list, retrieve, persons) and keeps trying writes (create, PATCH, static add): every read
must answer 200 with what was there before, every write 503 with the `kafka_unavailable` (or
`not_applied_yet`) envelope within `WRITE_BOUND_S`. The broker is then started again on the same
data directory and port, the api process is never touched: writes must succeed again by
themselves, every cohort must read as it did before the outage, and no write answered 503 may
have appeared.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from cli.local_kafka import LocalKafka, free_port
from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics
from tests.e2e.serving_stack import ApiProcess, eventually, start_api
from tests.reliability.api_stack import ApiHttp, produce_persons, provision, snapshot
from tests.reliability.harness import record_figures

pytestmark = [pytest.mark.kafka, pytest.mark.reliability]

PARTITIONS = 2
#: The longest a refused write may take: the publisher's Kafka waits are 10 s each (design §2).
WRITE_BOUND_S = 35.0
#: The longest a read may take during the outage: a retrieve waits up to 2 s to log its view.
READ_BOUND_S = 5.0

PERSON_FILTERS = {
    "properties": {
        "type": "AND",
        "values": [{"type": "person", "key": "email", "operator": "icontains", "value": "@reliable"}],
    }
}


def _refused(timed, what: str) -> None:
    body = timed.json()
    assert timed.status == 503, f"{what}: {timed.status} {timed.response.text}"
    assert body["type"] == "server_error" and body["code"] in ("kafka_unavailable", "not_applied_yet"), body
    assert "Kafka" in body["detail"] or "caught up" in body["detail"], body
    assert timed.elapsed_s < WRITE_BOUND_S, f"{what} took {timed.elapsed_s:.1f}s"


def test_the_api_serves_reads_and_refuses_writes_with_503_while_the_broker_is_down(tmp_path: Path):
    outage_s = float(os.environ.get("RELIABILITY_OUTAGE_S", 12))
    broker = LocalKafka(tmp_path / "kafka", port=free_port())
    broker.start()
    api: ApiProcess | None = None
    client: ApiHttp | None = None
    try:
        bootstrap = broker.bootstrap
        topics = Topics(prefix=f"a{uuid.uuid4().hex[:8]}_", partitions=PARTITIONS)
        ensure_topics(bootstrap, topics.specs())
        settings = Settings(
            kafka_bootstrap=bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS, data_dir=tmp_path / "api"
        )
        project_id, key = provision(settings)
        persons = produce_persons(bootstrap, topics, project_id, 12)
        api = start_api(settings, tmp_path)
        client = ApiHttp(api.url, project_id, key)
        dynamic = [
            client.ok("POST", "cohorts/", 201, json={"name": f"d{n}", "filters": PERSON_FILTERS}) for n in range(3)
        ]
        client.ok("PATCH", f"cohorts/{dynamic[0]['id']}/", json={"name": "d0 renamed"})
        static = client.ok("POST", "cohorts/", 201, json={"name": "s", "is_static": True})
        eventually(
            lambda: (
                client.call(
                    "PATCH", f"cohorts/{static['id']}/add_persons_to_static_cohort/", json={"person_ids": persons[:8]}
                ).status
                == 200
            ),
            30,
            lambda: "the api never saw the persons",
        )
        ids = [c["id"] for c in dynamic] + [static["id"]]
        before = snapshot(client, ids)
        assert len(before["persons"][static["id"]]) == 8

        assert broker.stop(), "the broker should have been running"
        down = time.monotonic()
        reads = writes = 0
        read_max_s = write_max_s = 0.0
        refused_names: list[str] = []
        while time.monotonic() - down < outage_s:
            for path in ("cohorts/", f"cohorts/{dynamic[1]['id']}/", f"cohorts/{static['id']}/persons/"):
                timed = client.call("GET", path)
                assert timed.status == 200, f"GET {path} during the outage: {timed.status} {timed.response.text}"
                assert timed.elapsed_s < READ_BOUND_S, f"GET {path} took {timed.elapsed_s:.1f}s"
                read_max_s = max(read_max_s, timed.elapsed_s)
                reads += 1
            assert sorted(p["uuid"] for p in timed.json()["results"]) == before["persons"][static["id"]]
            name = f"during outage {writes}"
            attempts = [
                ("POST", "cohorts/", {"name": name, "filters": PERSON_FILTERS}),
                ("PATCH", f"cohorts/{dynamic[2]['id']}/", {"name": name}),
                ("PATCH", f"cohorts/{static['id']}/add_persons_to_static_cohort/", {"person_ids": persons[8:]}),
            ]
            for method, path, body in attempts:
                timed = client.call(method, path, json=body)
                _refused(timed, f"{method} {path}")
                write_max_s = max(write_max_s, timed.elapsed_s)
                writes += 1
            refused_names.append(name)
        during = snapshot(client, ids)
        assert during == before, "reads changed during the outage"
        assert api.process.poll() is None, f"api died during the outage:\n{api.log()[-4000:]}"

        broker.start()
        back = time.monotonic()
        eventually(
            lambda: client.call("POST", "cohorts/", json={"name": "after", "filters": PERSON_FILTERS}).status == 201,
            90,
            lambda: f"writes never succeeded again:\n{api.log()[-3000:]}",
        )
        recovered_s = time.monotonic() - back
        client.ok("PATCH", f"cohorts/{dynamic[2]['id']}/", json={"name": "d2 after"})
        client.ok("PATCH", f"cohorts/{static['id']}/add_persons_to_static_cohort/", json={"person_ids": persons[8:]})

        after = snapshot(client, ids)
        assert after["rows"][dynamic[0]["id"]] == before["rows"][dynamic[0]["id"]]
        assert after["rows"][dynamic[1]["id"]] == before["rows"][dynamic[1]["id"]]
        assert after["rows"][dynamic[2]["id"]]["name"] == "d2 after"
        assert after["persons"][static["id"]] == sorted(persons)
        for cohort_id in ids:  # entries from before are all there; the refused writes logged nothing
            assert set(before["activity"][cohort_id]) <= set(after["activity"][cohort_id])
        assert len(after["activity"][dynamic[2]["id"]]) == len(before["activity"][dynamic[2]["id"]]) + 1
        assert len(after["activity"][static["id"]]) == len(before["activity"][static["id"]]) + 1
        names = {row["name"] for row in client.all_pages("cohorts/")}
        assert not names & set(refused_names), f"refused writes appeared: {sorted(names & set(refused_names))}"
        assert api.process.poll() is None
    finally:
        if client is not None:
            client.close()
        if api is not None:
            api.stop()
        broker.stop()
    record_figures(
        "api-broker-outage",
        {
            "outage_s": outage_s,
            "reads_during_outage": reads,
            "read_max_s": round(read_max_s, 2),
            "writes_refused_503": writes,
            "write_refusal_max_s": round(write_max_s, 1),
            "writes_ok_again_after_s": round(recovered_s, 1),
            "refused_writes_that_appeared": 0,
        },
    )
