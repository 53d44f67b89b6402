"""Benchmark 1 in one command: preload once, run both framework baselines and the worker, report.

    .venv/bin/python -m bench.run_ingest --events 300000

1. Broker: `COHORTS_KAFKA_BOOTSTRAP` when set, else a local single-node Kafka under the run's
   directory (stopped at the end).
2. Preload (`bench.preload`) the data set under a fresh topic prefix, or reuse one (`--manifest`).
3. For each event loop in `--loops` and each of `--repeat` rounds: the no-op baseline, then the
   counter baseline, each a subprocess with its own consumer group reading the same events.
4. The worker (`bench.ingest.measure_worker`) with 100 cohorts, timed to the last flip, when
   `stream.app` is ready; otherwise the report says so and gives no number. The cohorts are
   calculated before the worker reads any event, or while it ingests with
   `--calculate-while-ingesting` (every run before 2026-11-27 20:00 UTC). `--workers 1,2`
   measures one worker, then two worker processes in one consumer group (benchmark 7, scale-out),
   each count on its own copy of the data set (preloaded anew with the same sizes and seed, so the
   same bytes under another prefix). `--repeat 0` skips the baselines.
5. Print the table and append a section (machine, command, results, ratios) to docs/benchmarks.md.

Every phase has a deadline. Logs, results and the manifest stay in bench/results/<run>/ (git-ignored);
broker data, faust state and (on a configured cluster) the run's topics are removed unless `--keep`.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
from dataclasses import replace
from pathlib import Path

from bench import ingest
from bench.common import (
    Dataset,
    PhaseError,
    PhaseResult,
    add_output_arguments,
    delete_prefixed_topics,
    local_broker,
    new_run,
    run_child,
)
from bench.preload import described, new_prefix, preload
from bench.report import append_section, ingest_section, load_average, machine_info, ratio_lines, results_table
from cohorts.settings import Settings

__all__ = ["main"]


def _baseline(
    name: str, dataset: Dataset, manifest: Path, run_dir: Path, loop: str, round_: int, timeout_s: float
) -> PhaseResult:
    """One baseline process; its app id (= consumer group) is new, so it reads from the start."""
    tag = f"{name}-{loop}-{round_}"
    args = [
        "-m", f"bench.baseline_{name}",
        "--manifest", str(manifest),
        "--result", str(run_dir / f"{tag}.json"),
        "--app-id", f"{dataset.prefix}bench-{run_dir.name}-{tag}",
        "--datadir", str(run_dir / "state" / tag),
        "--loop", loop,
    ]  # fmt: skip
    return run_child(
        f"baseline {tag}",
        args,
        result_path=run_dir / f"{tag}.json",
        log_path=run_dir / f"{tag}.log",
        timeout_s=timeout_s,
    )


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cohorts", type=int, default=100, help="active cohorts for the worker")
    parser.add_argument("--loops", default="uvloop", help="comma list of uvloop,aio; the worker uses the first")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of each baseline per loop")
    parser.add_argument("--workers", default="1", help="comma list of worker process counts, e.g. 1,2")
    parser.add_argument("--skip-worker", action="store_true")
    parser.add_argument("--worker-args", default="", help="more arguments for each worker, e.g. '--input-linger-ms 50'")
    parser.add_argument(
        "--calculate-while-ingesting",
        action="store_true",
        help="the worker calculates the cohorts while it ingests (the measure before 2026-11-27 20:00 UTC)",
    )
    parser.add_argument("--manifest", type=Path, default=None, help="reuse a preloaded data set (its broker)")
    parser.add_argument("--timeout-s", type=float, default=None, help="deadline per baseline (default scales)")
    parser.add_argument("--worker-timeout-s", type=float, default=None, help="deadline of the worker phase")
    add_output_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep broker data, faust state and topics")
    args = parser.parse_args(argv)
    # SIGTERM (or SIGINT, which a background job ignores) must still stop the children and the broker
    signal.signal(signal.SIGTERM, _exit_on_signal)
    loops = [loop.strip() for loop in args.loops.split(",") if loop.strip()]
    if not loops or not set(loops) <= {"uvloop", "aio"}:
        parser.error("--loops takes uvloop and/or aio")
    worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    if not worker_counts or min(worker_counts) < 1 or (args.manifest is not None and len(worker_counts) > 1):
        parser.error("--workers takes positive counts, and only one when --manifest reuses a data set")

    run_dir, command = new_run(args.results_dir, "ingest", "bench.run_ingest", argv)

    reused = args.manifest is not None
    configured = Dataset.load(args.manifest).bootstrap if reused else Settings().kafka_bootstrap
    results: list[PhaseResult] = []
    loads: list[tuple[str, str]] = [("start", load_average())]
    worker_note: str | None = None
    dataset: Dataset | None = None
    prefixes: list[str] = []
    failures: list[str] = []
    with local_broker(run_dir, configured) as broker:
        if reused:
            dataset = Dataset.load(args.manifest)
        else:
            print(f"preloading {args.events:,} events over {args.persons:,} persons on {broker.bootstrap}", flush=True)
            dataset = preload(described(args, broker.bootstrap))
        manifest = run_dir / "dataset.json"
        dataset.save(manifest)
        timeout_s = args.timeout_s or 120 + dataset.events / 250
        worker_timeout_s = args.worker_timeout_s or 3 * timeout_s
        try:
            for loop in loops:
                for round_ in range(1, args.repeat + 1):
                    for name in ("noop", "counter"):
                        loads.append((f"{name}/{loop}/{round_}", load_average()))
                        print(f"baseline {name} ({loop}, round {round_}) ...", flush=True)
                        try:
                            result = _baseline(name, dataset, manifest, run_dir, loop, round_, timeout_s)
                        except PhaseError as exc:
                            failures.append(str(exc))
                            print(f"  FAILED: {exc}", flush=True)
                            continue
                        results.append(result)
                        print(f"  {result.rate:,.0f} events/s ({result.seconds:.2f} s)", flush=True)
            # --- benchmark 1's subject: the real worker, to the last flip -------------------------
            unavailable = None if args.skip_worker else ingest.worker_unavailable()
            if args.skip_worker:
                worker_note = "worker: not measured (--skip-worker)"
            elif unavailable:
                worker_note = f"worker: not measured (stream.app not ready: {unavailable})"
                print(worker_note, flush=True)
            else:
                for index, count in enumerate(worker_counts):
                    if index > 0:  # every worker count consumes its own copy of the same bytes
                        print(f"preloading the same data set anew for {count} workers", flush=True)
                        copy = preload(replace(dataset, prefix=new_prefix(), produce_seconds=None))
                        prefixes.append(copy.prefix)
                    else:
                        copy = dataset
                    tag = "worker" if count == 1 else f"worker x{count}"
                    loads.append((tag, load_average()))
                    print(f"{tag} ({loops[0]}, {args.cohorts} cohorts) ...", flush=True)
                    try:
                        result = ingest.measure_worker(
                            copy,
                            run_dir / ("worker" if index == 0 else f"workers-{count}"),
                            cohorts=args.cohorts,
                            loop=loops[0],
                            timeout_s=worker_timeout_s,
                            workers=count,
                            worker_args=shlex.split(args.worker_args),
                            calculated_first=not args.calculate_while_ingesting,
                            report_calculated=args.calculate_while_ingesting,
                            broker_pid=broker.pid,
                        )
                    except PhaseError as exc:
                        note = f"{tag}: not measured ({exc})"
                        worker_note = note if worker_note is None else f"{worker_note}\n- {note}"
                        print(note, flush=True)
                    else:
                        results.append(result)
                        print(f"  {result.rate:,.0f} events/s to the last flip ({result.seconds:.2f} s)", flush=True)
            loads.append(("end", load_average()))
        finally:
            if not args.keep:
                shutil.rmtree(run_dir / "state", ignore_errors=True)
                for data in run_dir.glob("worker*/data"):
                    shutil.rmtree(data, ignore_errors=True)
                if configured and not reused and dataset is not None:
                    for prefix in [dataset.prefix, *prefixes]:
                        delete_prefixed_topics(dataset.bootstrap, prefix)
    if not args.keep:
        shutil.rmtree(run_dir / "kafka", ignore_errors=True)

    print()
    print(results_table(results))
    for line in ratio_lines(results):
        print(line)
    notes = [f"- FAILED: {failure}" for failure in failures]
    if not args.no_report:
        section = ingest_section(
            command=command,
            dataset=dataset,
            machine=machine_info(broker.kafka_version),
            results=results,
            worker_note=worker_note,
            loads=loads,
            notes=notes,
        )
        append_section(args.report, section)
        print(f"appended to {args.report}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
