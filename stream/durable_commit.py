"""Make faust commit an input offset only after the table writes it covers have left faust's buffer.

faust writes a table change to RocksDB at once and queues the changelog message in its producer
buffer (`ProducerBuffer`). Before committing offsets it calls `producer.flush()`, which drains that
buffer first, but the drain (`flush_atmost`) gives up as soon as no message leaves the buffer for
0.1 s, which happens whenever an agent holds the event loop that long, and the message the buffer's
sender task has already taken off the queue is not counted at all. The offsets are then committed
while changelog writes of the inputs they cover are still queued; a crash at that moment leaves the
changelog without them although those inputs will never be read again, so a worker that rebuilds
the partition from the changelog (after a rebalance, or on a wiped disk) loses them (design §5).

`durable_commits(app)` counts what goes into the buffer and what its sender hands to the Kafka
producer, and makes the buffer's flush wait until everything put before it began was handed on.
It must be called before the worker starts (the buffer's sender task binds its send function then).
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

__all__ = ["durable_commits"]


def durable_commits(app: faust.App) -> None:
    buffer = app.producer.buffer
    put, send = buffer.put, buffer._send_pending
    # The buffer is a FIFO drained by one sender task, so "every message put before this flush has
    # been handed on" is `sent >= put` as counted when the flush began. Waiting for an empty buffer
    # instead would starve commits while agents keep writing.
    counts = {"put": 0, "sent": 0}

    def counted_put(fut: Any) -> None:
        put(fut)
        counts["put"] += 1

    async def counted_send(fut: Any) -> None:
        try:
            await send(fut)
        finally:
            counts["sent"] += 1

    async def flush() -> None:
        """Wait until every message buffered so far is with the Kafka producer (whose flush follows)."""
        target = counts["put"]
        while counts["sent"] < target:
            if buffer.state != "running":
                raise RuntimeError(f"cannot flush: producer buffer is {buffer.state}")
            buffer.message_sent.clear()
            try:
                await asyncio.wait_for(buffer.message_sent.wait(), timeout=0.1)
            except TimeoutError:
                continue

    buffer.put = counted_put
    buffer._send_pending = counted_send
    buffer.flush = flush
