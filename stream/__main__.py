"""`python -m stream`: run one worker in the foreground, configured by `COHORTS_*` variables.

Test-oriented options: `--clock-file PATH` injects a clock (the worker's now is the integer,
epoch µs, in that file, re-read on every call, so a test moves time by rewriting it), `--now-us N`
fixes the worker's now (benchmarks), and the timeouts below shorten group joins and rebalances.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cohorts.settings import Settings
from stream.app import run_worker
from stream.clock import file_clock, fixed_clock
from stream.runtime import WorkerTuning
from stream.topology import TopicMismatchError


def main(argv: list[str] | None = None) -> None:
    defaults = WorkerTuning()
    parser = argparse.ArgumentParser(prog="python -m stream", description="Run one cohorts worker.")
    clocks = parser.add_mutually_exclusive_group()
    clocks.add_argument("--clock-file", type=Path, default=None, help="tests: read now (epoch µs) from this file")
    clocks.add_argument("--now-us", type=int, default=None, help="benchmarks: now is this instant (epoch µs), always")
    parser.add_argument("--tick-interval", type=float, default=defaults.tick_interval_s, help="seconds")
    parser.add_argument("--session-timeout", type=float, default=defaults.session_timeout_s, help="seconds")
    parser.add_argument("--heartbeat-interval", type=float, default=defaults.heartbeat_interval_s, help="seconds")
    parser.add_argument("--rebalance-timeout", type=float, default=defaults.rebalance_timeout_s, help="seconds")
    parser.add_argument("--commit-interval", type=float, default=defaults.commit_interval_s, help="seconds")
    parser.add_argument(
        "--producer-linger-ms", type=int, default=defaults.producer_linger_ms, help="benchmarks: see WorkerTuning"
    )
    parser.add_argument(
        "--fetch-min-bytes", type=int, default=defaults.fetch_min_bytes, help="benchmarks: see WorkerTuning"
    )
    parser.add_argument(
        "--fetch-wait-ms", type=int, default=defaults.fetch_wait_ms, help="benchmarks: see WorkerTuning"
    )
    parser.add_argument(
        "--input-linger-ms",
        type=float,
        default=defaults.input_linger_s * 1000,
        help="benchmarks: see WorkerTuning",
    )
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    tuning = WorkerTuning(
        tick_interval_s=args.tick_interval,
        session_timeout_s=args.session_timeout,
        heartbeat_interval_s=args.heartbeat_interval,
        rebalance_timeout_s=args.rebalance_timeout,
        commit_interval_s=args.commit_interval,
        producer_linger_ms=args.producer_linger_ms,
        fetch_min_bytes=args.fetch_min_bytes,
        fetch_wait_ms=args.fetch_wait_ms,
        input_linger_s=args.input_linger_ms / 1000,
    )
    clock = file_clock(args.clock_file) if args.clock_file else None
    if args.now_us is not None:
        clock = fixed_clock(args.now_us)
    try:
        run_worker(Settings(), clock=clock, tick_interval_s=args.tick_interval, tuning=tuning, loglevel=args.loglevel)
    except TopicMismatchError as exc:
        print(f"cohorts worker: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
