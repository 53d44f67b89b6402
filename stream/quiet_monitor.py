"""faust's Monitor without its per-message bookkeeping.

faust calls its Monitor sensor four times per record (message in, stream event in and out, message
out); each call updates counters, per-stream and per-task maps, a runtime deque and timestamps,
which serve only faust's own `/stats` pages. The worker reports through its own Prometheus metrics
(`stream.metrics`), so those four hooks do nothing here. Everything else the Monitor does (commit
and end-offset tracking, which faust calls directly) is inherited unchanged.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors import Monitor

__all__ = ["QuietMonitor", "quiet_monitor"]


class QuietMonitor(Monitor):
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


def quiet_monitor(app: faust.App) -> None:
    """Install the quiet Monitor (before the worker starts, when faust adds it to its sensors)."""
    app.monitor = QuietMonitor()
