"""One consumed Kafka record as a fold sees it, and the shape of a fold.

A fold turns one record into writes on a `Batch` of the api's store. The feeder calls folds for
records it consumed from Kafka; the in-memory publisher of the unit tests calls the same folds
for what it was asked to produce, so both paths share one implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from api.store import Batch

__all__ = ["Fold", "Record"]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


Fold = Callable[[Batch, Record], None]
