"""The worker's faust app: no per-record statistics, offsets still tracked, committed reads, short fetch waits."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from cohorts.settings import Settings
from stream.app import create_app
from stream.quiet_monitor import QuietMonitor
from stream.read_committed import FETCH_MAX_WAIT_MS


def test_the_worker_app_runs_the_quiet_monitor(tmp_path):
    app = create_app(Settings(data_dir=tmp_path))
    assert isinstance(app.monitor, QuietMonitor)


def test_per_record_hooks_record_nothing_while_direct_tracking_still_works():
    monitor = QuietMonitor()
    tp = TP("events", 3)
    message = SimpleNamespace(time_in=None)
    monitor.on_message_in(tp, 41, message)
    assert monitor.on_stream_event_in(tp, 41, object(), object()) is None
    monitor.on_stream_event_out(tp, 41, object(), object(), None)
    monitor.on_message_out(tp, 41, message)
    assert monitor.messages_received_total == 0 and monitor.events_total == 0 and message.time_in is None
    monitor.track_tp_end_offset(tp, 99)
    assert monitor.tp_end_offsets[tp] == 99


async def test_the_worker_consumer_reads_committed_records_and_waits_at_most_50_ms_for_a_fetch(tmp_path):
    """faust's driver hard-codes a 1.5 s fetch wait that stalled busy partitions behind idle ones
    (docs/benchmarks.md, "Fetch stall"); the worker's consumer must not inherit it."""
    app = create_app(Settings(data_dir=tmp_path))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._isolation_level == "read_committed"
        assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 50
    finally:
        await consumer.stop()  # never started: releases the client it built
