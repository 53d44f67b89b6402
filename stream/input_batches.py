"""Re-keyed person inputs on their way from ingest to `cohort_person_inputs`, sent in batches.

faust's per-message cost (fetch, conductor, event, stream iteration, acknowledgement) is paid by
every message the person fold consumes. Ingest therefore gathers the inputs bound for one
partition and sends them as one message (`cohorts.wire.person_input_batch`), in the order they
were consumed, so the fold's idempotence by source offset still sees each source partition in
order. A buffer is sent when it holds `max_inputs` inputs or `max_bytes`, when `linger_s` has
passed since its oldest input arrived, and before faust commits ingest's offsets (`flush` is a
hook of the pre-commit flush, `stream.fast_producer.attach`), so an input is never committed
upstream while it is only in memory here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from cohorts.wire import person_input_batch

__all__ = ["InputBatches"]

#: Sends one message: (partition, key, value).
Send = Callable[[int, bytes, bytes], None]

#: A batch stays well under Kafka's default 1 MB message limit; a larger input travels alone.
DEFAULT_MAX_BYTES: Final[int] = 256 * 1024


class InputBatches:
    def __init__(
        self,
        send: Send,
        partition_of: Callable[[bytes], int],
        *,
        linger_s: float,
        max_inputs: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._send = send
        self._partition_of = partition_of
        self._linger_s = linger_s
        self._max_inputs = max_inputs
        self._max_bytes = max_bytes
        #: partition -> (key of the first input, values, their bytes)
        self._waiting: dict[int, tuple[bytes, list[bytes], int]] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: Inputs handed to `add` so far (the forwarded-inputs metric reads it).
        self.added = 0

    def add(self, key: bytes, value: bytes) -> None:
        """Queue one encoded input for the partition of `key` (send it at once if batching is off)."""
        self.added += 1
        partition = self._partition_of(key)
        if self._max_inputs <= 1 or len(value) >= self._max_bytes:
            self._send_one(partition)
            self._send(partition, key, value)
            return
        waiting = self._waiting.get(partition)
        if waiting is None:
            waiting = (key, [value], len(value))
        else:
            first_key, values, size = waiting
            if size + len(value) > self._max_bytes:
                self._send_one(partition)
                waiting = (key, [value], len(value))
            else:
                values.append(value)
                waiting = (first_key, values, size + len(value))
        if len(waiting[1]) >= self._max_inputs:
            self._waiting.pop(partition, None)
            self._emit(partition, waiting)
            return
        self._waiting[partition] = waiting
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self.flush)

    def flush(self) -> None:
        """Send every waiting input now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, {}
        for partition, batch in waiting.items():
            self._emit(partition, batch)

    def pending(self) -> int:
        return sum(len(values) for _, values, _ in self._waiting.values())

    def _send_one(self, partition: int) -> None:
        waiting = self._waiting.pop(partition, None)
        if waiting is not None:
            self._emit(partition, waiting)

    def _emit(self, partition: int, batch: tuple[bytes, list[bytes], int]) -> None:
        key, values, _ = batch
        self._send(partition, key, values[0] if len(values) == 1 else person_input_batch(values))
