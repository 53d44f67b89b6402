"""The system the latency benchmark measures: one worker and one api on fresh topics, as processes.

Owns bringing them up and down (`running_stack`), the project and key (`api.admin`, on the api's
data directory), creating cohorts through the api and waiting until the worker has calculated
them, and reading the worker's consumer-group lag from the broker.

Invariants: the worker and the api run as the user would run them (`python -m stream`,
`python -m cli api`, configured only by `COHORTS_*` variables, plus the worker flags in
`worker_args`, which the report prints); both are stopped when the context exits, whatever happened.
Never: reads the worker's or the api's state other than over HTTP and Kafka.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client.parser import text_string_to_metric_families

from api.admin import create_key, create_project
from bench.common import spawn, stop_process, worker_committed
from cli.local_kafka import free_port
from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics

__all__ = ["Stack", "running_stack", "wait_for"]


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, log: Path | None = None) -> Any:
    """Call `check` until it returns something truthy; RuntimeError (with the log's tail) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = "" if log is None else "\n" + log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{what}: not reached within {timeout_s:.0f}s{tail}")
        time.sleep(0.2)


@dataclass
class Stack:
    settings: Settings
    topics: Topics
    team_id: int
    key: str
    url: str
    worker: subprocess.Popen[bytes]
    api: subprocess.Popen[bytes]
    worker_log: Path
    api_log: Path
    http: httpx.Client
    admin: AdminClient

    def create_cohort(self, name: str, filters: dict[str, Any]) -> int:
        response = self.http.post("cohorts/", json={"name": name, "filters": filters})
        if response.status_code != 201:
            raise RuntimeError(f"creating cohort {name!r}: {response.status_code} {response.text}")
        return response.json()["id"]

    def wait_calculated(self, cohort_ids: list[int], timeout_s: float = 120.0) -> None:
        """Until the worker reported every partition's calculation of each cohort's version."""

        def calculated(cohort_id: int) -> bool:
            body = self.http.get(f"cohorts/{cohort_id}/").json()
            return body["version"] == body["pending_version"] and not body["is_calculating"]

        for cohort_id in cohort_ids:
            wait_for(f"cohort {cohort_id} calculated", lambda c=cohort_id: calculated(c), timeout_s, self.worker_log)

    def worker_lag(self, topics: list[str]) -> int:
        """Messages of `topics` the worker's consumer group has not committed yet."""
        partitions = self.settings.partitions
        wanted = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        ends = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in wanted}, request_timeout=10)
        committed = worker_committed(self.admin, self.topics)
        return sum(
            max(0, future.result().offset - committed.get((tp.topic, tp.partition), 0)) for tp, future in ends.items()
        )

    def api_behind(self, topic: str) -> int:
        """Records of `topic` the api's views have not applied yet (its position gauge, refreshed every
        2 s, against the topic's end now); -1 while the api has not reported a position."""
        wanted = [TopicPartition(topic, p) for p in range(self.settings.partitions)]
        ends = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in wanted}, request_timeout=10)
        positions: dict[int, float] = {}
        for family in text_string_to_metric_families(self.http.get(f"{self.url}/metrics").text):
            for sample in family.samples:
                if sample.name == "cohorts_api_consumer_position" and sample.labels.get("topic") == topic:
                    positions[int(sample.labels["partition"])] = sample.value
        if len(positions) < len(wanted):
            return -1
        return sum(max(0, future.result().offset - int(positions[tp.partition])) for tp, future in ends.items())


def _env(settings: Settings, **extra: object) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("COHORTS_")}
    env.update(
        {
            "COHORTS_KAFKA_BOOTSTRAP": settings.bootstrap,
            "COHORTS_TOPIC_PREFIX": settings.topic_prefix,
            "COHORTS_PARTITIONS": str(settings.partitions),
            "COHORTS_DATA_DIR": str(settings.data_dir),
        }
    )
    env.update({f"COHORTS_{name.upper()}": str(value) for name, value in extra.items()})
    return env


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running_stack(
    bootstrap: str,
    partitions: int,
    work_dir: Path,
    worker_args: list[str],
    api_settings: dict[str, object] | None = None,
) -> Iterator[Stack]:
    """Fresh topics, a project and key, a worker and an api, both ready; stopped on exit.

    `api_settings`: extra `Settings` fields for the api (A/B runs), given as its `COHORTS_*` variables."""
    topics = Topics(prefix=f"lat{uuid.uuid4().hex[:8]}_", partitions=partitions)
    ensure_topics(bootstrap, topics.specs())
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=topics.prefix, partitions=partitions, data_dir=work_dir / "data"
    )
    project = create_project(settings, "Latency benchmark")
    key = create_key(settings, project["id"], "bench@example.com", ["*"])["key"]
    worker_log, api_log = work_dir / "worker.log", work_dir / "api.log"
    api_port = free_port()
    worker = spawn(["-m", "stream", *worker_args], env=_env(settings, worker_web_port=free_port()), log_path=worker_log)
    api = None
    http = None
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        api_env = _env(settings, api_host="127.0.0.1", api_port=api_port, **(api_settings or {}))
        api = spawn(["-m", "cli", "api"], env=api_env, log_path=api_log)
        url = f"http://127.0.0.1:{api_port}"
        wait_for("worker ready", lambda: "[^Worker]: Ready" in worker_log.read_text(errors="replace"), 120, worker_log)
        wait_for("api ready", lambda: _ready(url), 60, api_log)
        http = httpx.Client(
            base_url=f"{url}/api/projects/{project['id']}/", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        yield Stack(settings, topics, project["id"], key, url, worker, api, worker_log, api_log, http, admin)
    finally:
        if http is not None:
            http.close()
        if api is not None:
            stop_process(api)
        stop_process(worker)
