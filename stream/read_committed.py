"""Make faust's consumer read only committed records, and wait less for fetches.

The api writes catalog and control records inside Kafka transactions (a fenced or failed write is
aborted). faust's aiokafka driver reads `read_committed` only under its exactly-once guarantee, which
this project does not use (design §5: at-least-once plus an idempotent fold). Without this, a static
add from an aborted api write would still be applied by the worker.

faust's driver also hard-codes `fetch_max_wait_ms=1500`. aiokafka keeps one fetch in flight per
broker and does not refetch a partition whose records are still unconsumed, so after the busy
partitions return records the next request covers only idle ones (changelog, catalog, control) and
the broker holds it for 1.5 s, during which the busy partitions cannot be fetched again. A short
wait bounds that stall (docs/benchmarks.md, "Fetch stall").

aiokafka reads both settings when the consumer starts, so setting them right after faust builds
the consumer is enough.
"""

from __future__ import annotations

from typing import Final

import aiokafka
import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport

__all__ = ["FETCH_MAX_WAIT_MS", "read_committed"]

#: How long the broker may hold a fetch that has no records yet.
FETCH_MAX_WAIT_MS: Final[int] = 50


class _ReadCommittedThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _ReadCommittedConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


def read_committed(app: faust.App) -> None:
    """Install the committed-only consumer on `app`'s transport (before the worker starts)."""
    app.transport.Consumer = _ReadCommittedConsumer
