"""`python -m stream`: its flags become the worker's tuning, and no flag means the defaults."""

from __future__ import annotations

from typing import Any

import pytest

import stream.__main__ as worker_command
from stream.runtime import WorkerTuning


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `run_worker` would have been called with (nothing is started)."""
    seen: dict[str, Any] = {}

    def run_worker(settings: Any, **kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(worker_command, "run_worker", run_worker)
    return seen


def test_no_flag_runs_the_default_tuning(started: dict[str, Any]) -> None:
    worker_command.main([])
    assert started["tuning"] == WorkerTuning()
    assert started["clock"] is None


def test_the_request_batching_knobs_reach_the_tuning(started: dict[str, Any]) -> None:
    worker_command.main(["--producer-linger-ms", "2", "--fetch-min-bytes", "1", "--commit-interval", "0.5"])
    tuning = started["tuning"]
    assert (tuning.producer_linger_ms, tuning.fetch_min_bytes, tuning.commit_interval_s) == (2, 1, 0.5)
    assert tuning.tick_interval_s == WorkerTuning().tick_interval_s
