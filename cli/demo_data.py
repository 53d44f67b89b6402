"""Realistic PostHog-shaped persons and events for the demo, benchmarks and tests (pure, seeded).

A `DemoPopulation` of a few thousand persons with stable ids and properties produces
`clickhouse_person` upserts and `clickhouse_events_json` events in PostHog's formats (properties as JSON
strings, ClickHouse-format timestamps). The same seed gives the same data.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

__all__ = ["DEMO_COHORTS", "DemoPopulation", "clickhouse_time"]

PLANS = ("free", "free", "free", "pro", "pro", "enterprise")
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN", "JP")
BROWSERS = ("Chrome", "Chrome", "Firefox", "Safari", "Edge")
#: Event names with relative weights: pageviews dominate, checkouts are rare.
EVENTS = (
    ("$pageview", 60),
    ("signed_up", 2),
    ("added_to_cart", 12),
    ("checkout", 5),
    ("invited_teammate", 3),
    ("$autocapture", 18),
)

#: A handful of cohorts of different kinds, as the api's POST bodies (name + filters).
DEMO_COHORTS: list[dict] = [
    {
        "name": "Pro plan",
        "filters": {
            "properties": {
                "type": "AND",
                "values": [{"type": "person", "key": "plan", "operator": "exact", "value": "pro"}],
            }
        },
    },
    {
        "name": "Checked out 3+ times in 30 days",
        "filters": {
            "properties": {
                "type": "AND",
                "values": [
                    {
                        "type": "behavioral",
                        "key": "checkout",
                        "value": "performed_event_multiple",
                        "event_type": "events",
                        "time_value": 30,
                        "time_interval": "day",
                        "operator": "gte",
                        "operator_value": 3,
                    }
                ],
            }
        },
    },
    {
        "name": "Active in the last 5 minutes",
        "filters": {
            "properties": {
                "type": "AND",
                "values": [
                    {
                        "type": "behavioral",
                        "key": "$pageview",
                        "value": "performed_event",
                        "event_type": "events",
                        "time_value": 5,
                        "time_interval": "minute",
                    }
                ],
            }
        },
    },
    {
        "name": "Chrome users in Germany",
        "filters": {
            "properties": {
                "type": "AND",
                "values": [
                    {"type": "person", "key": "country", "operator": "exact", "value": "DE"},
                    {
                        "type": "behavioral",
                        "key": "$pageview",
                        "value": "performed_event",
                        "event_type": "events",
                        "time_value": 7,
                        "time_interval": "day",
                        "event_filters": [{"type": "event", "key": "$browser", "value": "Chrome", "operator": "exact"}],
                    },
                ],
            }
        },
    },
    {
        "name": "New this week",
        "filters": {
            "properties": {
                "type": "AND",
                "values": [
                    {
                        "type": "behavioral",
                        "key": "signed_up",
                        "value": "performed_event_first_time",
                        "event_type": "events",
                        "time_value": 7,
                        "time_interval": "day",
                    }
                ],
            }
        },
    },
]


def clickhouse_time(epoch_us: int) -> str:
    """`YYYY-MM-DD HH:MM:SS.ffffff` (UTC), PostHog's Kafka timestamp format."""
    return datetime.fromtimestamp(epoch_us / 1_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class DemoPopulation:
    """`size` persons of one team; `seed` makes everything reproducible."""

    team_id: int
    size: int = 3_000
    seed: int = 7
    _rng: random.Random = field(init=False, repr=False)
    person_ids: list[str] = field(init=False)
    _versions: dict[str, int] = field(init=False, repr=False)
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        namespace = uuid.UUID(int=self.seed)
        self.person_ids = [str(uuid.uuid5(namespace, f"{self.team_id}:{i}")) for i in range(self.size)]
        self._versions = dict.fromkeys(self.person_ids, 0)
        self._index = {person_id: i for i, person_id in enumerate(self.person_ids)}

    def person_record(self, person_id: str, now_us: int) -> dict:
        """A `clickhouse_person` upsert with a fresh version and plausible properties."""
        self._versions[person_id] += 1
        index = self._index[person_id]
        properties = {
            "email": f"user{index}@example.com",
            "plan": self._rng.choice(PLANS),
            "country": self._rng.choice(COUNTRIES),
            "age": self._rng.randint(18, 70),
        }
        return {
            "id": person_id,
            "team_id": self.team_id,
            "properties": orjson.dumps(properties).decode(),
            "is_identified": 1,
            "is_deleted": 0,
            "version": self._versions[person_id],
            "created_at": clickhouse_time(now_us),
            "timestamp": clickhouse_time(now_us),
        }

    def event(self, now_us: int, person_id: str | None = None) -> dict:
        """A `clickhouse_events_json` event at about `now_us` (a few seconds of jitter backwards)."""
        person_id = person_id or self._rng.choice(self.person_ids)
        name = self._rng.choices([e for e, _ in EVENTS], weights=[w for _, w in EVENTS])[0]
        timestamp_us = now_us - self._rng.randint(0, 3_000_000)
        properties = {"$browser": self._rng.choice(BROWSERS), "$current_url": f"https://example.com/{name}"}
        return {
            "uuid": str(uuid.UUID(int=self._rng.getrandbits(128))),
            "event": name,
            "properties": orjson.dumps(properties).decode(),
            "timestamp": clickhouse_time(timestamp_us),
            "team_id": self.team_id,
            "project_id": self.team_id,
            "distinct_id": f"d-{person_id[:8]}",
            "person_id": person_id,
            "elements_chain": "",
            "created_at": clickhouse_time(now_us),
            "person_mode": "full",
        }

    def distinct_id_record(self, person_id: str) -> dict:
        return {"team_id": self.team_id, "distinct_id": f"d-{person_id[:8]}", "person_id": person_id,
                "is_deleted": 0, "version": 1}  # fmt: skip

    def person_updates(self, now_us: int, count: int) -> Iterator[dict]:
        for person_id in self._rng.sample(self.person_ids, min(count, self.size)):
            yield self.person_record(person_id, now_us)
