"""What the worker's /ready says in each state (deploy probes rely on it)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from stream.app import readiness


def _state(*, catalog_loaded: bool, rebalancing: bool = False, in_recovery: bool = False):
    ready = asyncio.Event()
    if catalog_loaded:
        ready.set()
    app = SimpleNamespace(rebalancing=rebalancing, in_recovery=in_recovery)
    return app, SimpleNamespace(catalog=SimpleNamespace(ready=ready))


def test_ready_only_when_catalog_loaded_and_nothing_moves() -> None:
    assert readiness(*_state(catalog_loaded=True)) == "ready"


def test_not_ready_while_the_catalog_loads() -> None:
    assert readiness(*_state(catalog_loaded=False)) == "loading catalog"


def test_recovering_partitions_is_told_apart_from_rebalancing() -> None:
    assert readiness(*_state(catalog_loaded=True, rebalancing=True)) == "rebalancing"
    assert readiness(*_state(catalog_loaded=True, in_recovery=True)) == "recovering partitions"
