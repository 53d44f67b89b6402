"""What the latency benchmark observes, and how it turns observations into figures.

Owns:
- `Flip`: one measured event (a fresh person doing a flip cohort's event, so exactly one person
  enters exactly one flip cohort) and the instants it was seen at each stage.
- `TopicWatcher`: a thread reading a topic from its current end, handing each message's key,
  value, broker CreateTime and receipt instant to a callback.
- `CountPoller`: one thread per flip cohort polling its `GET cohorts/:id/` while it has flips
  outstanding; when a cohort's `count` grows by n, its n oldest outstanding flips became visible
  at that response.
- `percentile` and `summarise`: nearest-rank percentiles over the flips that reached a stage.

Invariants: every instant is wall-clock seconds (`time.time()`) or broker CreateTime
milliseconds of this machine's clock, so stages subtract directly. A flip that never reached a
stage keeps None there and is counted as missing, never given a number. Nothing starts at import.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from confluent_kafka import Consumer, TopicPartition

__all__ = ["CountPoller", "Flip", "StageSummary", "TopicWatcher", "percentile", "summarise"]


@dataclass
class Flip:
    """One flip event, produced at `produced_s`, and where it has been seen since."""

    index: int
    person_id: str
    #: Which flip cohort (0..k-1) and its id: the event is `bench_flip_<slot>`.
    slot: int
    cohort_id: int
    produced_s: float = 0.0
    #: Produced during the warm-up: observed, but left out of the figures.
    warm_up: bool = False
    #: CreateTime (ms) of the re-keyed input the worker's ingest agent wrote for it.
    input_ms: int | None = None
    #: CreateTime (ms) of its `entered` flip on cohort_membership_changed (the worker's send).
    flip_ms: int | None = None
    #: When this benchmark's consumer received that flip.
    flip_seen_s: float | None = None
    #: When `GET cohorts/:id/` first answered with a count that includes it.
    visible_s: float | None = None


class TopicWatcher:
    """Reads every partition of `topic` from its end at `start()`; `on_message(key, value, create_ms, seen_s)`."""

    def __init__(
        self, bootstrap: str, topic: str, on_message: Callable[[bytes | None, bytes | None, int, float], None]
    ) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-latency-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self._topic = topic
        self._on_message = on_message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{topic}", daemon=True)
        self.received = 0

    def start(self) -> None:
        """Assign at the current high watermarks (resolved now, so nothing produced later is missed)."""
        metadata = self._consumer.list_topics(self._topic, timeout=10)
        assignment = []
        for partition in sorted(metadata.topics[self._topic].partitions):
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, partition), timeout=10)
            assignment.append(TopicPartition(self._topic, partition, high))
        self._consumer.assign(assignment)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.05)
            if message is None or message.error() is not None:
                continue
            seen_s = time.time()
            self.received += 1
            self._on_message(message.key(), message.value(), message.timestamp()[1], seen_s)


class CountPoller:
    """Polls `GET cohorts/:id/` of each flip cohort with outstanding flips, one thread per cohort;
    when a cohort's `count` grows by n, its n oldest outstanding flips became visible then.

    With `after_received`, a cohort is polled only once this process has received one of its
    outstanding flips from `cohort_membership_changed`: the api cannot show a flip before Kafka
    holds it, and polling while none is there only loads the machine being measured. A flip the
    api showed earlier is marked at the first poll after that, so `visible_s` stays an upper bound.
    """

    def __init__(
        self,
        base_url: str,
        project_id: int,
        key: str,
        *,
        pause_s: float = 0.005,
        after_received: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=f"{base_url}/api/projects/{project_id}/cohorts/",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self._pause_s = pause_s
        self._after_received = after_received
        self._lock = threading.Lock()
        self._outstanding: dict[int, deque[Flip]] = {}
        self._counts: dict[int, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.requests = 0
        self.errors: list[str] = []

    def watch(self, cohort_id: int, count: int) -> None:
        """Follow `cohort_id`, whose count is `count` now (before `start`)."""
        with self._lock:
            self._outstanding[cohort_id] = deque()
            self._counts[cohort_id] = count

    def watched(self) -> list[int]:
        with self._lock:
            return list(self._outstanding)

    def add(self, flip: Flip) -> None:
        with self._lock:
            self._outstanding[flip.cohort_id].append(flip)

    def outstanding(self) -> int:
        with self._lock:
            return sum(len(queue) for queue in self._outstanding.values())

    def start(self) -> None:
        for cohort_id in self.watched():
            thread = threading.Thread(target=self._run, args=(cohort_id,), name=f"poll-{cohort_id}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._http.close()

    def _run(self, cohort_id: int) -> None:
        while not self._stop.is_set():
            if self.due(cohort_id):
                self.poll_once(cohort_id)
            time.sleep(self._pause_s)

    def due(self, cohort_id: int) -> bool:
        """Whether `cohort_id` is to be polled now (see the class docstring)."""
        with self._lock:
            queue = self._outstanding[cohort_id]
            if not self._after_received:
                return bool(queue)
            return any(flip.flip_seen_s is not None for flip in queue)

    def poll_once(self, cohort_id: int) -> None:
        """One `GET cohorts/:id/`; growth of `count` marks that many oldest outstanding flips visible
        at the response (an upper bound: the change became visible between request and response)."""
        try:
            response = self._http.get(f"{cohort_id}/")
        except httpx.HTTPError as exc:
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        seen_s = time.time()
        with self._lock:
            self.requests += 1
            if response.status_code != 200:
                self.errors.append(f"GET {cohort_id}: {response.status_code}")
                return
            count = response.json()["count"] or 0
            grown = count - self._counts[cohort_id]
            if grown <= 0:
                return
            self._counts[cohort_id] = count
            queue = self._outstanding[cohort_id]
            for _ in range(min(grown, len(queue))):
                queue.popleft().visible_s = seen_s


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class StageSummary:
    """Milliseconds from one instant of a flip to a later one, over the flips that reached both."""

    name: str
    samples: int
    missing: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def summarise(
    name: str, flips: Sequence[Flip], start: Callable[[Flip], float | None], end: Callable[[Flip], float | None]
) -> StageSummary:
    """`end - start` in ms per flip (both in seconds); flips missing either instant count as missing."""
    values = []
    missing = 0
    for flip in flips:
        a, b = start(flip), end(flip)
        if a is None or b is None:
            missing += 1
            continue
        values.append((b - a) * 1000)
    if not values:
        return StageSummary(name, 0, missing, None, None, None, None)
    return StageSummary(
        name,
        len(values),
        missing,
        percentile(values, 50),
        percentile(values, 95),
        percentile(values, 99),
        max(values),
    )
