"""The catalog announcer finishes the record it is announcing when the worker stops."""

from __future__ import annotations

import asyncio

import pytest

from stream.agents.catalog import _finish


def test_a_cancelled_announcer_still_sends_every_partition_of_the_record_under_way():
    """Scenario: a worker stopped between the second and third control partition of one record;
    the next holder of the catalog announced it again, so two partitions got it twice. Expected: the
    record is finished and the cancellation reported once it is."""
    sent: list[int] = []
    between = asyncio.Event()

    async def announce() -> None:
        for partition in range(4):
            if partition == 2:
                await between.wait()
            sent.append(partition)

    async def scenario() -> bool:
        caller = asyncio.ensure_future(_finish(announce()))
        await asyncio.sleep(0)
        caller.cancel()
        await asyncio.sleep(0)
        caller.cancel()  # a second cancellation changes nothing
        await asyncio.sleep(0)
        assert sent == [0, 1]
        between.set()
        return await caller

    assert asyncio.run(scenario()) is True
    assert sent == [0, 1, 2, 3]


def test_an_announcement_that_fails_raises_its_error():
    async def fail() -> None:
        raise RuntimeError("producer refused")

    with pytest.raises(RuntimeError, match="producer refused"):
        asyncio.run(_finish(fail()))


def test_an_announcement_without_cancellation_reports_none():
    async def nothing() -> None:
        await asyncio.sleep(0)

    assert asyncio.run(_finish(nothing())) is False
