"""TimeSlice yields once its budget of work has run, not at every call (a fake clock, no timing)."""

from __future__ import annotations

import asyncio

import pytest

from stream import time_slices
from stream.time_slices import TimeSlice


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_other_tasks_run_only_when_the_budget_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scenario: a task does 100 steps of 3 ms each on a 20 ms budget while another task counts its
    turns. Expected: the other task runs after every 7th step (21 ms), 14 times; never in between."""
    clock = _Clock()
    monkeypatch.setattr(time_slices.time, "perf_counter", clock)
    turns: list[int] = []
    steps = 0

    async def other() -> None:
        while True:
            turns.append(steps)
            await asyncio.sleep(0)

    turn = TimeSlice(0.02)
    watcher = asyncio.create_task(other())
    await asyncio.sleep(0)  # let it take its first turn
    for _ in range(100):
        clock.now += 0.003
        steps += 1
        await turn.maybe_yield()
    watcher.cancel()
    assert turns == [0, *range(7, 100, 7)]


async def test_restart_gives_a_fresh_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scenario: the budget ran out while the task waited elsewhere; `restart` starts a new one."""
    clock = _Clock()
    monkeypatch.setattr(time_slices.time, "perf_counter", clock)
    turn = TimeSlice(0.02)
    clock.now += 1.0
    turn.restart()
    yielded = []

    async def other() -> None:
        yielded.append(True)

    task = asyncio.create_task(other())
    await turn.maybe_yield()
    assert yielded == []  # no yield: the fresh budget is not spent
    await task


def test_over_says_whether_the_budget_is_spent_without_yielding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot loops' plain check: false up to the budget's end, true from it on, until a restart."""
    clock = _Clock()
    monkeypatch.setattr(time_slices.time, "perf_counter", clock)
    turn = TimeSlice(0.02)
    clock.now += 0.0195
    assert not turn.over()
    clock.now += 0.001
    assert turn.over()
    turn.restart()
    assert not turn.over()
