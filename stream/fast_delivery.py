"""Hand each fetched record to its stream without two new asyncio tasks per record.

faust's fetch loop (`Consumer._drain_messages`) delivers every record with
`wait_first(callback(message), suspend_flow.wait())`, so that a delivery stuck on a full stream
queue is abandoned when a rebalance suspends the flow. `mode`'s `wait_first` wraps both awaitables
in tasks and runs `asyncio.wait` on four futures: tens of µs per record, a large share of faust's
per-record cost (docs/benchmarks.md). Almost every delivery
finishes without ever waiting (the queue has room), so this runs the delivery coroutine one step
first: if it finishes, that is the whole delivery, with no task. If it waits, the started coroutine
continues inside faust's own `wait_first`, racing the flow suspension exactly as before.

`fast_delivery(app)` must be called before the worker starts; it wraps whatever consumer class the
app uses (stream.read_committed, stream.safe_fetch).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import faust
from mode.services import WaitResults

__all__ = ["fast_delivery", "finish_started"]


async def finish_started(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Drive a coroutine whose first step already ran and yielded `waiting_on`, as a task would:
    wait for what it waits on, then resume it; it reads that future's outcome itself."""
    while True:
        if waiting_on is None:  # a bare yield (asyncio.sleep(0))
            await asyncio.sleep(0)
        else:
            try:
                await asyncio.wait([waiting_on])
            except asyncio.CancelledError:
                waiting_on.cancel()
                try:  # let it clean up as a cancelled task would
                    coroutine.throw(asyncio.CancelledError())
                except (StopIteration, asyncio.CancelledError):
                    pass
                else:  # it caught the cancellation and waits again: abandoned
                    coroutine.close()
                raise
        try:
            waiting_on = coroutine.send(None)
        except StopIteration as done:
            return done.value


def fast_delivery(app: faust.App) -> None:
    base = app.transport.Consumer

    class FastDeliveryConsumer(base):  # type: ignore[misc, valid-type]
        async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
            if len(coros) != 2 or timeout is not None or not asyncio.iscoroutine(coros[0]):
                return await super().wait_first(*coros, timeout=timeout)
            delivery, suspended = coros
            if self.suspend_flow.is_set():
                return await super().wait_first(delivery, suspended)
            try:
                waiting_on = delivery.send(None)
            except StopIteration as done:
                _close(suspended)
                return WaitResults([delivery], [done.value], False)
            except BaseException:
                _close(suspended)
                raise
            return await super().wait_first(finish_started(delivery, waiting_on), suspended)

    FastDeliveryConsumer.__name__ = base.__name__
    app.transport.Consumer = FastDeliveryConsumer


def _close(awaitable: Any) -> None:
    """Close a coroutine that will never run (no 'never awaited' warning)."""
    if asyncio.iscoroutine(awaitable):
        with contextlib.suppress(RuntimeError):
            awaitable.close()
