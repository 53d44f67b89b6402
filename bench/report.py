"""Benchmark reports: the machine a run happened on, and the Markdown section it appends.

Owns `machine_info` (CPU, RAM, load, library and broker versions, read from /proc and package
metadata) and `ingest_section`, the text `bench.run_ingest` appends to docs/benchmarks.md. Every
figure it prints comes from a `PhaseResult` measured in this run; it computes ratios, nothing else.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import confluent_kafka

from bench.common import Dataset, PhaseResult
from cli.local_kafka import project_root

__all__ = [
    "REPORT_HEADER",
    "append_section",
    "ingest_section",
    "load_average",
    "machine_info",
    "publish",
    "ratio_lines",
    "results_table",
]

REPORT_HEADER = """# Benchmarks

Every number below was produced by the command printed with it (design §7); rerun it to check.
Sections are appended by the benchmark scripts in `bench/` (see bench/README.md), newest last.
"""

_PACKAGES = ("faust-streaming", "aiokafka", "confluent-kafka", "rocksdict", "uvloop", "orjson")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    """1/5/15-minute load averages, as `uptime` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def machine_info(kafka_version: str) -> dict[str, str]:
    """Label -> value, in the order the report lists them."""
    versions = []
    for package in _PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical CPUs (nproc {len(os.sched_getaffinity(0))})",
        "RAM": _ram_gib(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Libraries": ", ".join(versions) + f", librdkafka {confluent_kafka.libversion()[0]}",
        "Kafka": kafka_version,
    }


def _detail(result: PhaseResult) -> str:
    shown = {k: v for k, v in result.detail.items() if k not in ("loop", "log")}
    return ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in shown.items())


def results_table(results: Sequence[PhaseResult]) -> str:
    """The results as a Markdown table (also what the command prints)."""
    lines = [
        "| phase | loop | events | seconds | events/s | events per CPU-second | detail |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        loop = str(r.detail.get("loop", "")).split(".")[0]
        cpu_s = r.detail.get("cpu_s")
        per_cpu = f"{r.events / cpu_s:,.0f}" if cpu_s else "n/a"
        lines.append(
            f"| {r.name} | {loop} | {r.events:,} | {r.seconds:.2f} | {r.rate:,.0f} | {per_cpu} | {_detail(r)} |"
        )
    return "\n".join(lines)


def _best(results: Sequence[PhaseResult], name: str) -> PhaseResult | None:
    matching = [r for r in results if r.name == name]
    return max(matching, key=lambda r: r.rate) if matching else None


def ratio_lines(results: Sequence[PhaseResult]) -> list[str]:
    """Ratios between the best run of each phase, and the issue's targets where they apply."""
    noop, counter, worker = (_best(results, n) for n in ("noop", "counter", "worker"))
    lines = []
    if noop and counter:
        lines.append(f"- counter / no-op = {counter.rate / noop.rate:.2f}")
    if worker and noop:
        met = "met" if worker.rate >= 0.6 * noop.rate else "NOT met"
        lines.append(f"- worker / no-op = {worker.rate / noop.rate:.2f} (target >= 0.6: {met})")
    if worker and counter:
        met = "met" if worker.rate >= 3 * counter.rate else "NOT met"
        lines.append(f"- worker / counter = {worker.rate / counter.rate:.2f} (target >= 3: {met})")
    if worker:
        met = "met" if worker.rate >= 10_000 else "NOT met"
        lines.append(f"- worker = {worker.rate:,.0f} events/s (target >= 10,000: {met})")
    for result in results:
        count = result.detail.get("workers", 1)
        if worker and result.name.startswith("worker x") and count > 1:
            scale = result.rate / worker.rate
            met = "met" if scale >= 0.8 * count else "NOT met"
            lines.append(f"- {count} workers / 1 worker = {scale:.2f} (target >= {0.8 * count:.1f}: {met})")
    return lines


def ingest_section(
    *,
    command: str,
    dataset: Dataset,
    machine: dict[str, str],
    results: Sequence[PhaseResult],
    worker_note: str | None,
    loads: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
) -> str:
    """The Markdown section of one `bench.run_ingest` run."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    produced = dataset.persons + dataset.events
    preload = (
        f"; preload produced {produced:,} messages in {dataset.produce_seconds:.1f} s "
        f"({produced / dataset.produce_seconds:,.0f} msg/s)"
        if dataset.produce_seconds
        else ""
    )
    parts = [
        f"## Ingest throughput (benchmark 1), {stamp}",
        "",
        f"Command: `{command}`",
        "",
        f"Data: {dataset.events:,} events over {dataset.persons:,} persons (plus one person record each), "
        f"team {dataset.team_id}, seed {dataset.seed}, {dataset.partitions} partitions, events keyed by uuid"
        f"{preload}.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        results_table(results),
        "",
        *ratio_lines(results),
    ]
    if worker_note:
        parts += [f"- {_relative(worker_note)}"]
    parts += ["", "Load average (1, 5, 15 min) when each phase started: " + "; ".join(f"{n}: {v}" for n, v in loads)]
    if notes:
        parts += ["", *map(_relative, notes)]
    return "\n".join(parts) + "\n"


def _relative(text: str) -> str:
    """Paths under the checkout as the reader's checkout has them (bench/results/...)."""
    return text.replace(f"{project_root()}/", "")


def append_section(path: Path, section: str) -> None:
    """Append to the report, creating it with its header the first time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(REPORT_HEADER)
    with path.open("a") as report:
        report.write("\n" + section)


def publish(section: str, run_dir: Path, report: Path | None) -> None:
    """Print a benchmark's section, keep it as the run's result.md and append it to `report`
    (None: `--no-report`)."""
    print(section)
    (run_dir / "result.md").write_text(section)
    if report is not None:
        append_section(report, section)
        print(f"appended to {report}")
