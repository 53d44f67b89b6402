"""Benchmark 5: API read latency under concurrent load (list, retrieve, persons pages).

`.venv/bin/python -m bench.api_load` (the issue's size: 1,000 cohorts, 1,000,000 memberships)
`.venv/bin/python -m bench.api_load --cohorts 100 --members 100000 --duration 10 --no-report`

One command:
1. Broker: `COHORTS_KAFKA_BOOTSTRAP` when set, else a local single-node broker for the run.
2. Fresh topics, a project and key (`api.admin`).
3. Preload (`bench.api_load_data`): the cohorts, persons, distinct ids, memberships and
   calculation reports are produced to the topics the api consumes, as the worker and PostHog
   write them. The api is then started (`python -m cli api`, configured only by `COHORTS_*`
   variables) and folds them with its own feeder; the run waits until every partition's
   position reached the end (the fold rate is reported).
4. Checks, once, that the api serves the data set (counts, page sizes), so a broken read path
   cannot produce a fast number.
5. One load-generator process per scenario (`bench.api_load_client`): `--concurrency`
   keep-alive connections in a closed loop for `--duration` seconds after `--warmup`.
   Scenarios: list (first and last page of 100), retrieve (every cohort in a shuffled order),
   persons page 1 and the last full page of 100 (of every cohort, shuffled).
6. Report: p50/p95/p99/max, requests/s, non-200 answers, the api's CPU (from /proc) and the load
   average per scenario, against the issue's targets (p99 < 20 ms for list and retrieve,
   < 50 ms for a 100-person page). Printed, and appended to docs/benchmarks.md unless
   `--no-report`.

Never: a timed unit test; a number from a scenario whose answers were not 200.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from api.admin import create_key, create_project
from bench.api_load_data import ApiDataset, produce_dataset
from bench.common import local_broker, process_cpu_s, spawn, stop_process
from bench.latency_probes import percentile
from bench.latency_stack import wait_for
from bench.report import load_average, machine_info, publish
from cli.local_kafka import free_port, project_root
from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics

__all__ = ["Scenario", "ScenarioResult", "latency_summary", "main", "scenario_plan"]

#: The issue's targets: p99 in ms per scenario kind.
TARGETS_MS = {"list": 20.0, "retrieve": 20.0, "persons": 50.0}


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: str  # a key of TARGETS_MS
    paths: list[str]


@dataclass
class ScenarioResult:
    scenario: Scenario
    requests: int
    seconds: float
    statuses: dict[str, int]
    summary: dict[str, float]
    api_cpu_share: float | None
    load_before: str
    load_after: str

    @property
    def ok(self) -> bool:
        return self.requests > 0 and set(self.statuses) == {"200"}


@dataclass
class RunResult:
    data: ApiDataset
    partitions: int
    concurrency: int
    kafka_version: str
    produced: int = 0
    produce_s: float = 0.0
    fold_s: float = 0.0
    scenarios: list[ScenarioResult] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def latency_summary(values_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99/max (nearest rank) of a non-empty list of latencies."""
    return {
        "p50": percentile(values_ms, 50),
        "p95": percentile(values_ms, 95),
        "p99": percentile(values_ms, 99),
        "max": max(values_ms),
    }


def scenario_plan(project_id: int, data: ApiDataset, seed: int = 5) -> list[Scenario]:
    """The scenarios and their paths; cohorts are visited in one shuffled order (same seed, same order)."""
    base = f"/api/projects/{project_id}/cohorts/"
    ids = list(range(1, data.cohorts + 1))
    random.Random(seed).shuffle(ids)
    last_list = max(0, data.cohorts - 100)
    deep = max(0, data.per_cohort - 100)
    return [
        Scenario("list, first page", "list", [base]),
        Scenario(f"list, offset {last_list}", "list", [f"{base}?limit=100&offset={last_list}"]),
        Scenario("retrieve", "retrieve", [f"{base}{i}/" for i in ids]),
        Scenario("persons, first page of 100", "persons", [f"{base}{i}/persons/?limit=100" for i in ids]),
        Scenario(
            f"persons, offset {deep} (last full page)",
            "persons",
            [f"{base}{i}/persons/?limit=100&offset={deep}" for i in ids],
        ),
    ]


def _env(settings: Settings, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTS_")}
    env.update(
        {
            "COHORTS_KAFKA_BOOTSTRAP": settings.bootstrap,
            "COHORTS_TOPIC_PREFIX": settings.topic_prefix,
            "COHORTS_PARTITIONS": str(settings.partitions),
            "COHORTS_DATA_DIR": str(settings.data_dir),
            "COHORTS_API_HOST": "127.0.0.1",
            "COHORTS_API_PORT": str(port),
        }
    )
    return env


def _ends(bootstrap: str, topics: list[str], partitions: dict[str, int]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-ends-{uuid.uuid4().hex}"})
    try:
        return {
            (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t in topics
            for p in range(partitions[t])
        }
    finally:
        consumer.close()


def _positions(url: str) -> dict[tuple[str, int], int]:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.TransportError:
        return {}
    positions = {}
    for family in text_string_to_metric_families(text):
        if family.name == "cohorts_api_consumer_position":
            for sample in family.samples:
                positions[(sample.labels["topic"], int(sample.labels["partition"]))] = int(sample.value)
    return positions


def _check(http: httpx.Client, data: ApiDataset) -> list[str]:
    """One request per scenario kind, its answer checked against the data set."""
    listed = http.get("cohorts/").json()
    retrieved = http.get("cohorts/1/").json()
    first = http.get("cohorts/1/persons/?limit=100").json()
    deep = http.get(f"cohorts/1/persons/?limit=100&offset={max(0, data.per_cohort - 100)}").json()
    expected_page = min(100, data.per_cohort)
    problems = []
    if listed.get("count") != data.cohorts:
        problems.append(f"list count {listed.get('count')} != {data.cohorts}")
    if retrieved.get("count") != data.per_cohort:
        problems.append(f"retrieve count {retrieved.get('count')} != {data.per_cohort}")
    if len(first.get("results", [])) != expected_page or len(deep.get("results", [])) != expected_page:
        problems.append(f"persons pages of {len(first.get('results', []))} and {len(deep.get('results', []))}")
    if problems:
        raise RuntimeError("the api does not serve the data set: " + "; ".join(problems))
    return [
        f"list count {listed['count']:,}; cohort 1 count {retrieved['count']:,}; "
        f"persons pages of {len(first['results'])} (first) and {len(deep['results'])} (last full)"
    ]


def _run_scenario(
    tag: str, scenario: Scenario, url: str, key: str, api_pid: int, args: argparse.Namespace, work: Path
) -> ScenarioResult:
    paths_file, result_file = work / f"{tag}.paths.json", work / f"{tag}.result.json"
    paths_file.write_text(json.dumps(scenario.paths))
    result_file.unlink(missing_ok=True)
    load_before = load_average()
    cpu_before, started = process_cpu_s(api_pid), time.monotonic()
    client = spawn(
        [
            "-m",
            "bench.api_load_client",
            *("--url", url, "--key", key, "--paths", str(paths_file), "--result", str(result_file)),
            *("--concurrency", str(args.concurrency), "--duration", str(args.duration), "--warmup", str(args.warmup)),
        ],
        env=None,
        log_path=work / f"{tag}.log",
    )
    try:
        client.wait(args.duration + args.warmup + 120)
    finally:
        stop_process(client)
    cpu_after, elapsed = process_cpu_s(api_pid), time.monotonic() - started
    if not result_file.exists():
        raise RuntimeError(f"load generator for {scenario.name!r} wrote no result; see {work / f'{tag}.log'}")
    raw = json.loads(result_file.read_text())
    share = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / elapsed
    return ScenarioResult(
        scenario=scenario,
        requests=raw["requests"],
        seconds=raw["seconds"],
        statuses=raw["statuses"],
        summary=latency_summary(raw["latencies_ms"]) if raw["latencies_ms"] else {},
        api_cpu_share=share,
        load_before=load_before,
        load_after=load_average(),
    )


def run(args: argparse.Namespace, work: Path) -> RunResult:
    with local_broker(work, os.environ.get("COHORTS_KAFKA_BOOTSTRAP")) as broker:
        topics = Topics(prefix=f"apiload{uuid.uuid4().hex[:8]}_", partitions=args.partitions)
        ensure_topics(broker.bootstrap, topics.specs())
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            topic_prefix=topics.prefix,
            partitions=args.partitions,
            data_dir=work / "data",
        )
        try:
            project = create_project(settings, "API read benchmark")
            key = create_key(settings, project["id"], "bench@example.com", ["*"])["key"]
            data = ApiDataset(project["id"], args.cohorts, args.members, args.persons or max(1, args.members // 5))
            result = RunResult(data, args.partitions, args.concurrency, broker.kafka_version)
            print(f"preloading {data} ...", flush=True)
            result.produced, result.produce_s = produce_dataset(broker.bootstrap, topics, data)
            print(f"produced {result.produced:,} records in {result.produce_s:.1f} s", flush=True)
            folded = [topics.catalog, topics.persons, topics.distinct_ids, topics.membership_changed]
            folded.append(topics.calculation_reports)
            counts = {t: (1 if t == topics.catalog else args.partitions) for t in folded}
            ends = _ends(broker.bootstrap, folded, counts)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            api_log = work / "api.log"
            started = time.monotonic()
            api = spawn(["-m", "cli", "api"], env=_env(settings, port), log_path=api_log)
            try:
                wait_for(
                    "api folded the data set",
                    lambda: (lambda pos: all(pos.get(tp, -1) >= end for tp, end in ends.items()))(_positions(url)),
                    args.fold_timeout,
                    api_log,
                )
                result.fold_s = time.monotonic() - started
                print(f"api folded the data set in {result.fold_s:.1f} s", flush=True)
                headers = {"Authorization": f"Bearer {key}"}
                with httpx.Client(base_url=f"{url}/api/projects/{project['id']}/", headers=headers, timeout=60) as http:
                    result.checks = _check(http, data)
                for index, scenario in enumerate(scenario_plan(project["id"], data)):
                    outcome = _run_scenario(f"scenario{index}", scenario, url, key, api.pid, args, work)
                    result.scenarios.append(outcome)
                    print(_row(outcome), flush=True)
            finally:
                stop_process(api)
        finally:
            if not args.keep:
                shutil.rmtree(work / "data", ignore_errors=True)
                if os.environ.get("COHORTS_KAFKA_BOOTSTRAP"):
                    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
                    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(topics.prefix)]
                    for future in admin.delete_topics(names, operation_timeout=30).values():
                        future.result(timeout=60)
    return result


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _row(r: ScenarioResult) -> str:
    s = r.summary
    errors = sum(n for status, n in r.statuses.items() if status != "200")
    cpu = "n/a" if r.api_cpu_share is None else f"{r.api_cpu_share * 100:.0f}%"
    return (
        f"| {r.scenario.name} | {r.requests:,} | {r.requests / r.seconds:,.0f} | {_ms(s.get('p50'))} | "
        f"{_ms(s.get('p95'))} | {_ms(s.get('p99'))} | {_ms(s.get('max'))} | {errors:,} | {cpu} | {r.load_before} |"
    )


def verdicts(scenarios: list[ScenarioResult]) -> list[str]:
    """One line per scenario: its p99 against the issue's target for its kind."""
    lines = []
    for r in scenarios:
        target = TARGETS_MS[r.scenario.kind]
        if not r.ok:
            lines.append(f"- {r.scenario.name}: no figure (answers other than 200: {r.statuses})")
            continue
        met = "met" if r.summary["p99"] < target else "NOT met"
        lines.append(f"- {r.scenario.name}: p99 {r.summary['p99']:,.1f} ms, target < {target:.0f} ms: {met}")
    return lines


def section(result: RunResult, command: str, machine: dict[str, str]) -> str:
    data = result.data
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    fold_rate = result.produced / result.fold_s if result.fold_s else 0
    parts = [
        f"## API read latency (benchmark 5), {stamp}",
        "",
        f"Command: `{command}`",
        "",
        f"Data: {data.cohorts:,} dynamic cohorts of one project, {data.members:,} memberships "
        f"({data.per_cohort:,} per cohort) over {data.persons:,} persons (one person record and one distinct id "
        f"each), one finished calculation report per cohort and partition, {result.partitions} partitions. "
        f"Produced to the api's topics ({result.produced:,} records in {result.produce_s:.1f} s); the api, "
        f"started afterwards, folded them in {result.fold_s:.1f} s from process start ({fold_rate:,.0f} records/s).",
        f"Load: one load-generator process per scenario, {result.concurrency} keep-alive connections in a closed "
        f"loop; api: one `python -m cli api` process (defaults). Checked before the load: {'; '.join(result.checks)}.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        "| scenario | requests | requests/s | p50 ms | p95 ms | p99 ms | max ms | non-200 | api CPU "
        "| load avg at start |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *(_row(r) for r in result.scenarios),
        "",
        *verdicts(result.scenarios),
        "- api CPU is the api process's CPU time over the scenario's wall time (100% = one core).",
    ]
    return "\n".join(parts) + "\n"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohorts", type=int, default=1_000)
    parser.add_argument("--members", type=int, default=1_000_000, help="memberships over all cohorts")
    parser.add_argument("--persons", type=int, default=None, help="default: members / 5")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds per scenario")
    parser.add_argument("--fold-timeout", type=float, default=900.0, help="seconds the api may take to fold")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: bench/results/api-load-<time>")
    parser.add_argument("--keep", action="store_true", help="keep the api's data dir and the run's topics")
    parser.add_argument("--no-report", action="store_true", help="do not append to docs/benchmarks.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = (args.work_dir or project_root() / "bench" / "results" / f"api-load-{stamp}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    command = shlex.join([".venv/bin/python", "-m", "bench.api_load", *(argv if argv is not None else sys.argv[1:])])
    result = run(args, work)
    text = section(result, command, machine_info(result.kafka_version))
    publish(text, work, None if args.no_report else project_root() / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
