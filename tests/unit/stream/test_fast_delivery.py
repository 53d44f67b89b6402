"""fast_delivery: a delivery that finishes at once costs no task; one that waits still races the flow."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from mode import Service

from stream.fast_delivery import fast_delivery


class _Consumer(Service):
    """What faust's fetch loop uses of its consumer: `wait_first` (mode's) and `suspend_flow`."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()
        self.slow_calls = 0

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        self.slow_calls += 1
        return await super().wait_first(*coros, timeout=timeout)


def _consumer() -> Any:
    app = SimpleNamespace(transport=SimpleNamespace(Consumer=_Consumer))
    fast_delivery(app)
    return app.transport.Consumer()


async def test_a_delivery_that_finishes_at_once_runs_inline_and_returns_its_result():
    consumer = _consumer()
    done: list[int] = []

    async def deliver(n: int) -> int:
        done.append(n)
        return n * 2

    tasks_before = len(asyncio.all_tasks())
    result = await consumer.wait_first(deliver(3), consumer.suspend_flow.wait())
    assert done == [3] and result.results == [6] and not result.stopped
    assert consumer.slow_calls == 0
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_delivery_that_waits_finishes_inside_the_race_with_its_awaited_value():
    consumer = _consumer()
    room: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done: list[str] = []

    async def deliver() -> str:
        got = await room  # the stream queue is full until someone takes from it
        await asyncio.sleep(0)  # a bare yield on the way
        done.append(got)
        return got

    asyncio.get_running_loop().call_later(0.02, room.set_result, "delivered")
    result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
    assert done == ["delivered"] and result.results == ["delivered"]
    assert consumer.slow_calls == 1


async def test_a_waiting_delivery_is_abandoned_and_cleaned_up_when_the_flow_is_suspended():
    consumer = _consumer()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stages: list[str] = []

    async def deliver() -> None:
        try:
            await never
            stages.append("delivered")
        finally:
            stages.append("cleaned up")

    asyncio.get_running_loop().call_later(0.02, consumer.suspend_flow.set)
    await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
    await asyncio.sleep(0.01)
    assert stages == ["cleaned up"] and never.cancelled()


async def test_an_error_raised_by_the_delivery_reaches_the_fetch_loop():
    consumer = _consumer()

    async def deliver() -> None:
        raise ValueError("cannot decode")

    with pytest.raises(ValueError, match="cannot decode"):
        await consumer.wait_first(deliver(), consumer.suspend_flow.wait())


async def test_with_the_flow_already_suspended_the_race_is_faust_s_own():
    consumer = _consumer()
    consumer.suspend_flow.set()

    async def deliver() -> str:
        return "x"

    await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
    assert consumer.slow_calls == 1
