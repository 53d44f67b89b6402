"""The api's views fetch with the broker-side wait its settings name (api.consumers), so that under
load the api asks the broker for a batch of flips, not for every few (docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any

import confluent_kafka
import pytest

from api.consumers import Feeder
from api.progress import Progress
from cohorts.settings import Settings


class _Consumer:
    """Stands in for confluent-kafka's Consumer: keeps the configuration it was built with."""

    built: list[dict[str, Any]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.built.append(config)

    def close(self) -> None:
        pass


def _fetch_config(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    _Consumer.built = []
    monkeypatch.setattr(confluent_kafka, "Consumer", _Consumer)
    monkeypatch.setattr(Feeder, "_assign", lambda self, consumer: False)
    feeder = Feeder(settings, None, {}, None, Progress())  # type: ignore[arg-type]
    feeder._run()
    (config,) = _Consumer.built
    return {key: config[key] for key in ("fetch.min.bytes", "fetch.wait.max.ms")}


def test_the_views_fetch_waits_for_64_kib_or_20_ms_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fetch_config(Settings(), monkeypatch) == {"fetch.min.bytes": 65_536, "fetch.wait.max.ms": 20}


def test_the_fetch_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTS_API_FETCH_MIN_BYTES", "1")
    monkeypatch.setenv("COHORTS_API_FETCH_WAIT_MS", "500")
    assert _fetch_config(Settings(), monkeypatch) == {"fetch.min.bytes": 1, "fetch.wait.max.ms": 500}


def test_a_wait_longer_than_half_a_second_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTS_API_FETCH_WAIT_MS", "501")
    with pytest.raises(ValueError, match="api_fetch_wait_ms"):
        Settings()
