"""The faust app the two framework baselines share, and the probe that times them.

Owns: an app configured like the worker (`stream.app.create_app`: kafka:// driver on aiokafka,
raw serializers, earliest offsets, the same commit interval and session timeouts, RocksDB store),
the event loop choice (uvloop or asyncio), and `Probe`, which notes the first event and, at the
`target`-th, writes the result file and stops the process. Every baseline runs as its own process
(`bench.run_ingest` starts it with `common.run_child`), so faust's loop, signal handlers and
globals never meet the orchestrator.

Never imports `stream`: the baselines must run whether or not the worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import faust
import mode.loop

from bench.common import Dataset, PhaseResult, write_result

__all__ = ["ROCKSDB_OPTIONS", "Probe", "baseline_main", "events_topic", "make_app"]

#: Small explicit RocksDB options (faust's defaults are a 2 GiB block cache and 64 MiB write
#: buffers per partition); the same values as the worker's person table (`stream.runtime`).
ROCKSDB_OPTIONS: Final[dict[str, int]] = {
    "write_buffer_size": 16 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 32 * 1024 * 1024,
    "block_cache_size": 32 * 1024 * 1024,
    "block_cache_compressed_size": 8 * 1024 * 1024,
}


def make_app(dataset: Dataset, app_id: str, datadir: Path, **overrides: Any) -> faust.App:
    """A faust app reading the data set's broker; `app_id` is also its consumer group.

    `overrides` replace settings; the counter baseline sets `value_serializer="json"` so its
    table stores integers (the events topic stays raw either way, see `events_topic`).
    """
    settings: dict[str, Any] = dict(
        broker=f"kafka://{dataset.bootstrap}",
        store="rocksdb://",
        datadir=str(datadir),
        topic_partitions=dataset.partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
    )
    settings.update(overrides)
    return faust.App(app_id, **settings)


def events_topic(app: faust.App, dataset: Dataset) -> faust.TopicT:
    """The preloaded events as raw bytes, whatever the app's default serializers."""
    return app.topic(
        dataset.topics.events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=dataset.partitions,
    )


@dataclass
class Probe:
    """Times one baseline from its first event to its `target`-th, inside the agent.

    The agent calls `first()` on its first event and `last()` on its `target`-th; `finish` then
    writes the result and sends this process SIGTERM, which faust's worker turns into a clean
    shutdown, so the phase ends by itself.
    """

    name: str
    target: int
    result_path: Path
    started_wall: float = field(default_factory=time.time)
    first_perf: float | None = None
    first_wall: float | None = None
    first_cpu: float | None = None
    seconds: float = 0.0
    cpu_s: float = 0.0
    loop: str = ""

    def first(self) -> None:
        self.first_perf = time.perf_counter()
        self.first_wall = time.time()
        self.first_cpu = time.process_time()
        loop = asyncio.get_running_loop()
        self.loop = f"{type(loop).__module__}.{type(loop).__qualname__}"

    def last(self) -> None:
        """At the `target`-th event: stop the clock (wall and this process's CPU, all threads)."""
        assert self.first_perf is not None and self.first_cpu is not None, "first() runs on the first event"
        self.seconds = time.perf_counter() - self.first_perf
        self.cpu_s = time.process_time() - self.first_cpu

    def finish(self, **detail: Any) -> None:
        """Write the result (with `detail`, e.g. checks done after the clock stopped) and stop."""
        assert self.first_wall is not None
        result = PhaseResult(
            name=self.name,
            events=self.target,
            seconds=round(self.seconds, 4),
            detail={
                "loop": self.loop,
                "startup_s": round(self.first_wall - self.started_wall, 3),
                "cpu_s": round(self.cpu_s, 2),
                **detail,
            },
        )
        write_result(self.result_path, result)
        os.kill(os.getpid(), signal.SIGTERM)


def baseline_main(
    name: str,
    install: Callable[[faust.App, Dataset, Probe], None],
    argv: list[str] | None = None,
    **app_overrides: Any,
) -> None:
    """Command line of a baseline process: build the app, let `install` add its agent, run it."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.baseline_{name}")
    parser.add_argument("--manifest", type=Path, required=True, help="dataset.json written by bench.preload")
    parser.add_argument("--result", type=Path, required=True, help="where to write the result JSON")
    parser.add_argument("--app-id", required=True, help="faust app id = consumer group (fresh per run)")
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument("--loop", choices=("uvloop", "aio"), default="uvloop")
    args = parser.parse_args(argv)
    probe = Probe(name=name, target=0, result_path=args.result)
    if args.loop == "uvloop":
        mode.loop.use("uvloop")  # sets the asyncio policy; must precede the worker's loop
    dataset = Dataset.load(args.manifest)
    args.datadir.mkdir(parents=True, exist_ok=True)
    probe.target = dataset.events
    app = make_app(dataset, args.app_id, args.datadir, **app_overrides)
    install(app, dataset, probe)
    faust.Worker(app, loglevel="WARNING").execute_from_commandline()
