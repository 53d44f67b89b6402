"""The worker's faust app keeps no per-record statistics, but still tracks offsets faust asks for."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from cohorts.settings import Settings
from stream.app import create_app
from stream.quiet_monitor import QuietMonitor


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
