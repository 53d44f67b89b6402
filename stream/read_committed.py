"""Make faust's consumer read only committed records.

The api writes catalog and control records inside Kafka transactions (a fenced or failed write is
aborted). faust's aiokafka driver reads `read_committed` only under its exactly-once guarantee, which
this project does not use (design §5: at-least-once plus an idempotent fold). Without this, a static
add from an aborted api write would still be applied by the worker.

aiokafka reads the consumer's isolation level when the consumer starts, so setting it right after
faust builds the consumer is enough.
"""

from __future__ import annotations

import aiokafka
import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport

__all__ = ["read_committed"]


class _ReadCommittedThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"
        return consumer


class _ReadCommittedConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


def read_committed(app: faust.App) -> None:
    """Install the committed-only consumer on `app`'s transport (before the worker starts)."""
    app.transport.Consumer = _ReadCommittedConsumer
