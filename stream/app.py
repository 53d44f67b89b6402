"""The faust app: wiring only. One file shows everything the worker runs.

    ingest_inputs        clickhouse_events_json        -> cohort_person_inputs | cohort_dead_letters
    (task, own group:    clickhouse_person             -> cohort_person_inputs | cohort_dead_letters
     batch consumer)     clickhouse_person_distinct_id -> validated and counted | cohort_dead_letters
    fold_inputs          cohort_person_inputs          -> persons table -> cohort_membership_changed
    (task, fold feed:    (the partitions faust assigned for control and the table)
     positions only)
    control              cohort_control                -> persons table -> cohort_membership_changed,
                                                          cohort_calculation_reports
    announce_changes     cohort_catalog                -> cohort_control (recalculate, every partition)
    (task, own group:
     batch consumer)
    follow_catalog       cohort_catalog (no group)     -> in-memory Catalog, in every worker
    send_ticks           timer, leader only            -> cohort_control (tick, every partition)
    report_lag           timer                         -> consumer lag gauge
    /metrics             web page                      -> Prometheus text

Nothing here connects at import and there is no module-level app: `create_app` builds one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import faust
from aiokafka.errors import IllegalStateError
from faust.web import Request, Response, View

from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.logs import logging_config
from stream.agents import catalog, control, ingest, person
from stream.clock import Clock, wall_clock_us
from stream.fast_delivery import fast_delivery
from stream.fast_producer import FastProducer
from stream.fast_producer import attach as attach_fast_producer
from stream.metrics import keep_only
from stream.partitioner import KeyPartitioner
from stream.quiet_monitor import quiet_monitor
from stream.read_committed import read_committed
from stream.runtime import PERSONS_TABLE, Runtime, WorkerTuning
from stream.safe_fetch import safe_fetching
from stream.state.disk import partition_bytes
from stream.topology import check_topics

__all__ = ["create_app", "run_worker", "worker_app_id"]


def worker_app_id(settings: Settings) -> str:
    """The faust app id, which is also its consumer group id and the changelog topics' prefix."""
    return Topics(prefix=settings.topic_prefix).worker_group


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    tick_interval_s: float = 10.0,
    tuning: WorkerTuning | None = None,
) -> faust.App:
    """Build the worker app; `clock` returns epoch µs (tests inject one), ticks every `tick_interval_s`."""
    tuning = replace(tuning or WorkerTuning(), tick_interval_s=tick_interval_s)
    topics = Topics(prefix=settings.topic_prefix, partitions=settings.partitions)
    partitioner = KeyPartitioner()
    app = faust.App(
        worker_app_id(settings),
        broker=f"kafka://{settings.bootstrap}",
        store="rocksdb://",
        datadir=str(settings.data_dir / "worker"),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=tuning.session_timeout_s,
        broker_heartbeat_interval=tuning.heartbeat_interval_s,
        broker_rebalance_timeout=tuning.rebalance_timeout_s,
        broker_commit_interval=tuning.commit_interval_s,
        table_standby_replicas=0,
        web_enabled=settings.worker_web_port != 0,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port or 6066,
        autodiscover=False,
        producer_partitioner=partitioner,
    )
    read_committed(app)
    safe_fetching(app)
    fast_delivery(app)
    quiet_monitor(app)
    fast = FastProducer(settings.bootstrap, linger_ms=tuning.producer_linger_ms)
    runtime = Runtime.build(app, settings, topics, clock or wall_clock_us, tuning, partitioner, fast)
    # Held person writes reach RocksDB right before the changelog offsets are noted (both synchronous,
    # so no write comes in between), and so before any commit (stream.state.store).
    attach_fast_producer(
        app, fast, before=[runtime.input_batches.flush], after=[runtime.store.write_pending, runtime.changelog.persist]
    )
    ingest.install(app, runtime)
    person.install(app, runtime)
    control.install(app, runtime)
    catalog.install(app, runtime)
    _install_observability(app, runtime)
    return app


def readiness(app: faust.App, rt: Runtime) -> str:
    """`ready`, or why not: `loading catalog`, `rebalancing`, `recovering partitions` (tables restoring)."""
    if not rt.catalog.ready.is_set():
        return "loading catalog"
    if app.rebalancing:
        return "rebalancing"
    if app.in_recovery:
        return "recovering partitions"
    return "ready"


def _install_observability(app: faust.App, rt: Runtime) -> None:
    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(rt.metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/health")
    class Health(View):
        """Liveness: the process answers."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        """Readiness: 200 once the catalog is loaded and no partition is rebalancing or restoring."""

        async def get(self, request: Request) -> Response:
            state = readiness(app, rt)
            return self.json({"status": state}, status=200 if state == "ready" else 503)

    consumed = set(rt.topics.worker_groups()[rt.topics.worker_group])

    @app.timer(interval=rt.tuning.lag_interval_s)
    async def report_lag() -> None:
        """Lag of the topics the agents and ingest consume (changelogs are read only during recovery).

        Partitions a rebalance moved to another worker stop being reported here, so a sum over
        workers counts each partition once."""
        consumer = app.consumer
        reported: set[tuple[str, str]] = set()
        feeds = {**(await rt.ingest_consumer.lag()), **(await rt.fold_feed.lag()), **(await rt.announce_consumer.lag())}
        for (topic, partition), lag in feeds.items():
            rt.metrics.consumer_lag.labels(topic, str(partition)).set(lag)
            reported.add((topic, str(partition)))
        for tp in consumer.assignment():
            if tp.topic not in consumed:
                continue
            try:
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
            except (AssertionError, IllegalStateError):  # revoked by a rebalance meanwhile: not ours now
                continue
            if position is not None and highwater is not None:
                rt.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
                reported.add((tp.topic, str(tp.partition)))
        keep_only(rt.metrics.consumer_lag, reported)

    @app.timer(interval=rt.tuning.lag_interval_s)
    async def report_state_size() -> None:
        """RocksDB bytes of the partitions this worker holds; a partition moved away stops being reported."""
        sizes = partition_bytes(Path(app.conf.tabledir), PERSONS_TABLE)
        for partition, size in sizes.items():
            rt.metrics.state_bytes.labels(str(partition)).set(size)
        keep_only(rt.metrics.state_bytes, {(str(partition),) for partition in sizes})


def run_worker(
    settings: Settings,
    *,
    clock: Clock | None = None,
    tick_interval_s: float = 10.0,
    tuning: WorkerTuning | None = None,
    loglevel: str = "INFO",
) -> None:
    """Run one worker in the foreground until interrupted (`cohorts worker`, `python -m stream`).

    Refuses to start (TopicMismatchError) when an existing co-partitioned topic's partition count
    differs from `settings.partitions`.
    """
    check_topics(settings)
    (settings.data_dir / "worker").mkdir(parents=True, exist_ok=True)
    app = create_app(settings, clock=clock, tick_interval_s=tick_interval_s, tuning=tuning)
    worker = faust.Worker(app, loglevel=loglevel, logging_config=logging_config(settings.log_format, loglevel))
    worker.execute_from_commandline()
