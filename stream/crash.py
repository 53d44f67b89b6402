"""A worker task whose unexpected end stops the worker: one that silently stopped ingesting or
folding would look healthy (its consumer group membership and web endpoints live elsewhere)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import faust

__all__ = ["run_or_crash"]


async def run_or_crash(app: faust.App, name: str, work: Awaitable[None], close: Callable[[], Awaitable[None]]) -> None:
    """Await `work`; on an error crash the app (`app.crash`); `close` runs in every case."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        app.log.exception("%s stopped: %r", name, exc)
        await app.crash(exc)
        raise
    finally:
        await close()
