"""The person fold's feed is released before faust closes the tables when the worker stops."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import faust

from stream.agents.person import release_before_tables_close


def test_faust_closes_the_tables_in_stop_consumer():
    """The faust internal the wrap relies on (faust-streaming 0.15.3): an upgrade that moves the
    closing elsewhere fails here, not by folding into closed databases."""
    source = inspect.getsource(faust.App._stop_consumer)
    assert "self.tables.stop()" in source


def test_the_feed_is_released_before_the_consumer_stops():
    """Scenario: the worker stops. Expected: the feed's release (flush, commit, unassign) completes
    before faust's own `_stop_consumer` begins."""
    order: list[str] = []

    class Feed:
        async def release(self) -> None:
            order.append("release begins")
            await asyncio.sleep(0)
            order.append("release done")

    async def stop_consumer() -> None:
        order.append("faust stops the consumer and closes the tables")

    app = SimpleNamespace(_stop_consumer=stop_consumer)
    release_before_tables_close(app, Feed())  # type: ignore[arg-type]
    asyncio.run(app._stop_consumer())
    assert order == ["release begins", "release done", "faust stops the consumer and closes the tables"]
