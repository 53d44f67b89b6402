"""Pre-load a benchmark data set into Kafka: person records, then events, under a fresh topic prefix.

Owns: creating the data set's topics (`cohorts.topics.Topics.specs`), producing every message of
`common.persons_then_events` as fast as one confluent-kafka producer goes, and checking that the
broker holds exactly that many messages before the data set's manifest is written. A manifest is
only ever written for a complete data set.

Standalone: `python -m bench.preload --events 300000 --manifest data.json` uses
`COHORTS_KAFKA_BOOTSTRAP` (or `--bootstrap`), else starts a local broker under `--work-dir` and
leaves it running for the phases that follow (stop it with `--stop-broker DIR`).
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import replace
from pathlib import Path

from bench.common import Dataset, PhaseError, message_counts, persons_then_events
from cli.local_kafka import LocalKafka, free_port
from cli.producer import json_producer, produce_json
from cohorts.settings import Settings
from infra.kafka_admin import ensure_topics

__all__ = ["new_prefix", "preload"]

#: Producer batching for bulk loading: bigger batches than the interactive default (linger 5 ms).
_BULK = {
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
}


def new_prefix() -> str:
    """A topic prefix no earlier run used, so each run's consumer groups start from nothing."""
    return f"bench{uuid.uuid4().hex[:8]}_"


def described(args: argparse.Namespace, bootstrap: str, prefix: str | None = None) -> Dataset:
    """The data set a benchmark's `--partitions/--events/--persons/--seed` describe, under `prefix`
    (default: a fresh one), not produced yet."""
    return Dataset(
        bootstrap=bootstrap,
        prefix=prefix or new_prefix(),
        partitions=args.partitions,
        events=args.events,
        persons=args.persons,
        seed=args.seed,
    )


def preload(dataset: Dataset, *, progress: bool = True) -> Dataset:
    """Create the topics and produce the data set; returns it with `produce_seconds` filled in.

    Raises PhaseError when the broker does not end up holding exactly the expected messages
    (a topic reused from an earlier run, or lost deliveries).
    """
    topics = dataset.topics
    ensure_topics(dataset.bootstrap, topics.specs())
    producer = json_producer(dataset.bootstrap, **_BULK)
    started = time.perf_counter()
    produced = 0
    for topic, key, value in persons_then_events(dataset):
        produce_json(producer, topic, key, value)
        produced += 1
        if produced % 50_000 == 0:
            producer.poll(0)
            if progress:
                print(f"  produced {produced:,} messages", flush=True)
    if producer.flush(120) != 0:
        raise PhaseError("the producer could not deliver every message within 120s")
    seconds = time.perf_counter() - started
    expected = {topics.persons: dataset.persons, topics.events: dataset.events}
    held = message_counts(dataset.bootstrap, list(expected))
    if held != expected:
        raise PhaseError(f"broker holds {held}, expected {expected}")
    if progress:
        print(f"  {produced:,} messages in {seconds:.1f}s = {produced / seconds:,.0f} msg/s", flush=True)
    return replace(dataset, produce_seconds=round(seconds, 3))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.preload", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prefix", default=None, help="topic prefix (default: a fresh one)")
    parser.add_argument("--bootstrap", default=None, help="default: COHORTS_KAFKA_BOOTSTRAP, else a local broker")
    parser.add_argument("--work-dir", type=Path, default=Path("bench/results/preload"))
    parser.add_argument("--manifest", type=Path, default=None, help="default: <work-dir>/dataset.json")
    parser.add_argument("--stop-broker", type=Path, default=None, metavar="DIR", help="stop a broker left running")
    args = parser.parse_args(argv)
    if args.stop_broker:
        stopped = LocalKafka(args.stop_broker / "kafka").stop()
        print("stopped" if stopped else "no broker was running there")
        return
    args.work_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = args.bootstrap or Settings().kafka_bootstrap
    if bootstrap is None:
        kafka = LocalKafka(args.work_dir / "kafka", port=free_port(), heap="1g")
        kafka.start()
        bootstrap = kafka.bootstrap
        print(f"local broker left running at {bootstrap}; stop it with: "
              f"python -m bench.preload --stop-broker {args.work_dir}")  # fmt: skip
    dataset = preload(described(args, bootstrap, args.prefix))
    manifest = args.manifest or args.work_dir / "dataset.json"
    dataset.save(manifest)
    print(f"manifest: {manifest}")


if __name__ == "__main__":
    main()
