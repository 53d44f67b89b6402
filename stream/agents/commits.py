"""Committing an agent's messages as soon as they are handled, before a rebalance can forget them.

The control agent reads through faust's consumer and writes what a repeat would show twice (its
calculation reports), so it commits this way. The catalog announcer used to as well; it now reads
through a consumer of its own group (stream.agents.catalog).
"""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import ConsumerT

__all__ = ["commit_taken"]


async def commit_taken(consumer: ConsumerT, taken: Sequence[faust.EventT]) -> None:
    """Acknowledge the messages taken and commit them before a rebalance can forget them.

    When a rebalance begins, faust drops the offsets acknowledged but not yet committed
    (`Consumer.on_partitions_revoked` clears `_acked` before `wait_empty` commits), so whoever owns
    the partition next would take those messages again. Left to the commit timer (0.5 s, longer
    while a flush is under way, over 1.5 s on a loaded machine), they were in that window often
    enough for a rebalance to repeat whole recalculations
    (tests/reliability/test_rebalance_recalculations.py). So nothing may suspend between the
    acknowledgements and the commit that collects their offsets: a commit already under way
    collected its offsets before them and `Consumer.commit` would only wait for it, so it is waited
    out first. The ack a faust stream sends later changes nothing.
    """
    if not taken:
        return
    while await consumer.maybe_wait_for_commit_to_finish():
        pass  # another commit may have begun before this coroutine resumed
    for event in taken:
        event.ack()
    await consumer.commit()
