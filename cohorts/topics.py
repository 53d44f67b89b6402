"""Topic names, partition counts, configs and the key function (design §3).

Worker, api and CLI take every topic name from here. Co-partitioned topics share one partition
count and the Java client's key function (murmur2 over the key bytes), so a `team:person` key
lands on the same partition whichever client produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

try:  # librdkafka's murmur2 partitioner; not every confluent-kafka release exposes it
    from confluent_kafka.cimpl import murmur2 as _librdkafka_murmur2
except ImportError:  # pragma: no cover
    _librdkafka_murmur2 = None

__all__ = [
    "TopicSpec",
    "Topics",
    "murmur2",
    "partition_for",
    "person_key",
]

_COMPACT: Final = {"cleanup.policy": "compact"}
#: Never deleted by age or size: a wiped api data dir rebuilds its views from the whole log.
_RETAINED: Final = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as `cohorts topics create` makes it."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    co_partitioned: bool = False


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of design §3 under one prefix. Build once from the settings."""

    prefix: str = ""
    partitions: int = 16

    def _name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    # Inputs, in PostHog's formats.
    @property
    def events(self) -> str:
        return self._name("clickhouse_events_json")

    @property
    def persons(self) -> str:
        return self._name("clickhouse_person")

    @property
    def distinct_ids(self) -> str:
        return self._name("clickhouse_person_distinct_id")

    # Internal, keyed by `team:person`.
    @property
    def person_inputs(self) -> str:
        """Normalised events and person updates, re-keyed by ingest to `team:person`."""
        return self._name("cohort_person_inputs")

    @property
    def control(self) -> str:
        return self._name("cohort_control")

    @property
    def catalog(self) -> str:
        return self._name("cohort_catalog")

    # Outputs.
    @property
    def membership_changed(self) -> str:
        return self._name("cohort_membership_changed")

    @property
    def calculation_reports(self) -> str:
        return self._name("cohort_calculation_reports")

    @property
    def dead_letters(self) -> str:
        return self._name("cohort_dead_letters")

    # The api's own log (one partition, retained forever).
    @property
    def api_log(self) -> str:
        """What the api changes besides definitions: activity, static members, file-system views.
        Every api process folds it into its views, so state written through one is read from all."""
        return self._name("cohort_api_log")

    # The worker's consumer groups (names share the prefix, so deployments never mix).
    @property
    def worker_group(self) -> str:
        """The faust app's group (its app id): control; its assignment also decides which worker
        holds each partition of the person table and of the re-keyed inputs."""
        return self._name("cohorts-worker")

    @property
    def announce_group(self) -> str:
        """The catalog announcer's own group (stream.agents.catalog): one member reads the catalog
        and turns each new cohort version into `recalculate` messages."""
        return self._name("cohorts-worker-announce")

    @property
    def ingest_group(self) -> str:
        """Ingest's own group (stream.batch_consumer): the PostHog input topics."""
        return self._name("cohorts-worker-ingest")

    @property
    def fold_group(self) -> str:
        """The person fold's positions in the re-keyed inputs (stream.fold_feed). Nobody joins it: each
        worker reads the partitions the faust group assigned it and commits here."""
        return self._name("cohorts-worker-fold")

    def worker_groups(self) -> dict[str, list[str]]:
        """Each worker consumer group and the topics it consumes and commits, in design §2 order."""
        return {
            self.ingest_group: [self.events, self.persons, self.distinct_ids],
            self.fold_group: [self.person_inputs],
            self.worker_group: [self.control],
            self.announce_group: [self.catalog],
        }

    def followed_groups(self) -> dict[str, str]:
        """Groups without members of their own -> the group whose members read for them."""
        return {self.fold_group: self.worker_group}

    def specs(self) -> list[TopicSpec]:
        """What `cohorts topics create` creates; faust's own changelog topics are not listed."""
        n = self.partitions
        return [
            TopicSpec(self.events, n),
            TopicSpec(self.persons, n),
            TopicSpec(self.distinct_ids, n),
            TopicSpec(self.person_inputs, n, co_partitioned=True),
            TopicSpec(self.control, n, co_partitioned=True),
            TopicSpec(self.catalog, 1, dict(_COMPACT)),
            TopicSpec(self.membership_changed, n),
            TopicSpec(self.calculation_reports, n),
            TopicSpec(self.dead_letters, n),
            TopicSpec(self.api_log, 1, dict(_RETAINED)),
        ]


def person_key(team_id: int, person_id: str) -> str:
    """The partitioning key of all per-person state: `"{team_id}:{person_id}"`."""
    return f"{team_id}:{person_id}"


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java `Utils.murmur2`), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    tail = length & ~3
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java default partitioner (and aiokafka's) picks for `key`.

    librdkafka's murmur2 partitioner (exposed by confluent-kafka) answers the same twenty times
    faster than `murmur2` in Python, which matters at one call per re-keyed event."""
    if _librdkafka_murmur2 is not None and type(key) is bytes and partitions > 0:
        return _librdkafka_murmur2(key, partitions)
    return (murmur2(key) & 0x7FFFFFFF) % partitions
