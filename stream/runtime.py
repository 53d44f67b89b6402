"""What the agents of one worker process share: channels, person store, catalog, clock, metrics.

Built once per app by `stream.app.create_app`; nothing here is global. Per-person state lives in
the person table (it survives rebalances); everything else here is either configuration or
derived, rebuildable state (the catalog, deadline indexes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import faust

from cohorts.settings import Settings
from cohorts.topics import Topics
from stream.batch_consumer import BatchConsumer
from stream.catalog import Catalog
from stream.clock import Clock
from stream.fast_producer import FastProducer
from stream.fold_feed import FoldFeed
from stream.input_batches import InputBatches
from stream.metrics import WorkerMetrics
from stream.outputs import Outputs
from stream.partitioner import KeyPartitioner
from stream.state.changelog import Changelog
from stream.state.store import PersonStore

__all__ = ["PERSONS_TABLE", "ROCKSDB_OPTIONS", "Channels", "Runtime", "WorkerTuning"]

#: The faust table of person records (its changelog topic and RocksDB directories carry the name).
PERSONS_TABLE = "persons"

#: RocksDB options of the person table: small caches and buffers so several workers fit one machine
#: (faust passes these to `RocksDBOptions`; its defaults are a 2 GiB block cache and 64 MiB buffers).
ROCKSDB_OPTIONS: Final[dict[str, int]] = {
    "write_buffer_size": 16 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 32 * 1024 * 1024,
    "block_cache_size": 32 * 1024 * 1024,
    "block_cache_compressed_size": 8 * 1024 * 1024,
}


@dataclass(frozen=True, slots=True)
class WorkerTuning:
    """Knobs tests shorten; the defaults suit production."""

    tick_interval_s: float = 10.0
    session_timeout_s: float = 30.0
    heartbeat_interval_s: float = 3.0
    rebalance_timeout_s: float = 60.0
    commit_interval_s: float = 2.0
    catalog_wait_s: float = 30.0
    lag_interval_s: float = 5.0
    #: How long ingest holds a re-keyed input to batch it with others of its partition, and the
    #: most inputs one batch carries (stream.input_batches); 1 sends every input alone.
    input_linger_s: float = 0.02
    input_batch_max: int = 500
    #: Most `cohort_person_inputs` messages the fold takes at once: each may hold `input_batch_max`
    #: inputs, and a commit waits for the batch under way.
    fold_batch_max: int = 16
    #: Fewer, larger Kafka requests: how long the worker's librdkafka producer gathers messages into
    #: one request, and how many bytes ingest's and the fold's fetches let the broker gather before
    #: answering, but never longer than `fetch_wait_ms`. At 2,000 events/s on a shared 2-core
    #: machine the broker's network threads took about three quarters of a core (docs/benchmarks.md,
    #: "Reading the latency runs of 2026-11-27 06:00 UTC"); each knob adds at most its wait to a
    #: record's way. The fetch wait and the input linger were 50 ms until 2026-11-27: at 1,000
    #: events/s an input waited for both fetches and the linger, most of its median time; at 20 ms
    #: the worker spends a few % of a core more there, and no more at 2,000 events/s, where the
    #: bytes arrive first (docs/benchmarks.md, "Reading the runs of 2026-11-27 14:20-15:40 UTC").
    producer_linger_ms: int = 10
    fetch_min_bytes: int = 32 * 1024
    fetch_wait_ms: int = 20


@dataclass(frozen=True, slots=True)
class Channels:
    events: Any
    persons: Any
    distinct_ids: Any
    control: Any
    catalog: Any
    membership_changed: Any
    calculation_reports: Any
    dead_letters: Any

    @classmethod
    def declare(cls, app: faust.App, topics: Topics) -> Channels:
        n = topics.partitions

        def raw(name: str, partitions: int | None = None, **kw: Any) -> Any:
            return app.topic(
                name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=partitions,
                **kw,
            )

        return cls(
            events=raw(topics.events),
            persons=raw(topics.persons),
            distinct_ids=raw(topics.distinct_ids),
            control=raw(topics.control, n),
            catalog=raw(topics.catalog, 1),
            membership_changed=raw(topics.membership_changed),
            calculation_reports=raw(topics.calculation_reports),
            dead_letters=raw(topics.dead_letters),
        )


@dataclass(slots=True)
class Runtime:
    settings: Settings
    topics: Topics
    clock: Clock
    tuning: WorkerTuning
    channels: Channels
    table: Any
    store: PersonStore
    changelog: Changelog
    #: Ingest's reader of the PostHog topics, in its own consumer group.
    ingest_consumer: BatchConsumer
    #: The person fold's reader of `cohort_person_inputs` (the partitions faust assigned).
    fold_feed: FoldFeed
    #: The catalog announcer's reader of `cohort_catalog`, in its own consumer group.
    announce_consumer: BatchConsumer
    #: Re-keyed inputs on their way to `cohort_person_inputs`.
    input_batches: InputBatches
    catalog: Catalog
    metrics: WorkerMetrics
    outputs: Outputs
    #: The app's producer partitioner too, so checking a key costs nothing after producing it.
    partitioner: KeyPartitioner

    @classmethod
    def build(
        cls,
        app: faust.App,
        settings: Settings,
        topics: Topics,
        clock: Clock,
        tuning: WorkerTuning,
        partitioner: KeyPartitioner,
        fast: FastProducer,
    ) -> Runtime:
        table = app.Table(
            PERSONS_TABLE,
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=topics.partitions,
            store="rocksdb://",
            options=dict(ROCKSDB_OPTIONS),
            help="one record per team:person (stream.state.codec)",
        )
        channels = Channels.declare(app, topics)
        metrics = WorkerMetrics()
        changelog = Changelog(fast, table.changelog_topic.get_topic_name(), lambda: table.data)
        partitions = topics.partitions

        def send_input(partition: int, key: bytes, value: bytes) -> None:
            fast.send(topics.person_inputs, key, value, partition)

        return cls(
            settings=settings,
            topics=topics,
            clock=clock,
            tuning=tuning,
            channels=channels,
            table=table,
            store=PersonStore(table, changelog.send),
            changelog=changelog,
            ingest_consumer=BatchConsumer(
                settings.bootstrap,
                topics.ingest_group,
                topics.worker_groups()[topics.ingest_group],
                commit_interval_s=tuning.commit_interval_s,
                session_timeout_s=tuning.session_timeout_s,
                heartbeat_interval_s=tuning.heartbeat_interval_s,
                fetch_min_bytes=tuning.fetch_min_bytes,
                fetch_wait_ms=tuning.fetch_wait_ms,
            ),
            fold_feed=FoldFeed(
                BatchConsumer(
                    settings.bootstrap,
                    topics.fold_group,
                    [],
                    commit_interval_s=tuning.commit_interval_s,
                    session_timeout_s=tuning.session_timeout_s,
                    heartbeat_interval_s=tuning.heartbeat_interval_s,
                    max_records=tuning.fold_batch_max,
                    fetch_min_bytes=tuning.fetch_min_bytes,
                    fetch_wait_ms=tuning.fetch_wait_ms,
                ),
                topics.person_inputs,
                lambda: app.producer.flush(),  # the pre-commit flush `stream.fast_producer.attach` installs later
            ),
            announce_consumer=BatchConsumer(
                settings.bootstrap,
                topics.announce_group,
                topics.worker_groups()[topics.announce_group],
                commit_interval_s=0.0,
                session_timeout_s=tuning.session_timeout_s,
                heartbeat_interval_s=tuning.heartbeat_interval_s,
            ),
            input_batches=InputBatches(
                send_input,
                lambda key: partitioner.partition(key, partitions),
                linger_s=tuning.input_linger_s,
                max_inputs=tuning.input_batch_max,
            ),
            catalog=Catalog(),
            metrics=metrics,
            outputs=Outputs(channels, metrics, topics.partitions, lambda: app.producer, fast),
            partitioner=partitioner,
        )
