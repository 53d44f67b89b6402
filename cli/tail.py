"""`cohorts tail`: `cohort_membership_changed`, one readable line per enter/leave."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer

from cohorts.settings import Settings
from cohorts.topics import Topics
from cohorts.wire import MembershipChange, WireError

__all__ = ["format_change", "tail_changes"]


def format_change(change: MembershipChange) -> str:
    arrow = "+" if change.status == "entered" else "-"
    return (
        f"{change.last_updated}  {arrow} {change.status:<7}  team {change.team_id}  cohort {change.cohort_id}"
        f"  person {change.person_id}  v{change.version}"
    )


def tail_changes(
    settings: Settings,
    *,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_timeout_s: float | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Print changes as they arrive; stops after `limit` lines or `idle_timeout_s` without one."""
    logger = logging.getLogger("cohorts.tail.librdkafka")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"cohorts-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "logger": logger,
        }
    )
    consumer.subscribe([Topics(settings.topic_prefix, settings.partitions).membership_changed])
    printed = 0
    idle_s = 0.0
    try:
        while limit is None or printed < limit:
            message = consumer.poll(0.5)
            if message is None or message.error():
                idle_s += 0.5
                if idle_timeout_s is not None and idle_s >= idle_timeout_s:
                    break
                continue
            idle_s = 0.0
            try:
                echo(format_change(MembershipChange.from_bytes(message.value())))
            except WireError as exc:
                echo(f"(unreadable message at offset {message.offset()}: {exc})")
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return printed
