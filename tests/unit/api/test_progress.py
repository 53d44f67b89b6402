"""Positions the feeder applied, and writers waiting on them (read-your-writes)."""

from __future__ import annotations

import threading

from api.progress import Progress

CATALOG = ("cohort_catalog", 0)
LOG = ("cohort_api_log", 0)


def test_unknown_partition_is_minus_one_and_positions_never_move_back() -> None:
    progress = Progress({CATALOG: 5})
    assert progress.position(LOG) == -1
    progress.advance({CATALOG: 3, LOG: 1})
    assert progress.snapshot() == {CATALOG: 5, LOG: 1}


def test_a_target_is_reached_at_its_exact_offset() -> None:
    progress = Progress({CATALOG: 4})
    assert progress.reached({CATALOG: 4}) and not progress.reached({CATALOG: 5})
    assert progress.reached({})


def test_wait_returns_when_another_thread_advances() -> None:
    progress = Progress({CATALOG: 0, LOG: 0})
    timer = threading.Timer(0.05, lambda: progress.advance({CATALOG: 2, LOG: 1}))
    timer.start()
    try:
        assert progress.wait({CATALOG: 2, LOG: 1}, timeout_s=5)
    finally:
        timer.cancel()


def test_wait_gives_up_after_the_timeout() -> None:
    progress = Progress({CATALOG: 1})
    assert progress.wait({CATALOG: 2}, timeout_s=0.02) is False
