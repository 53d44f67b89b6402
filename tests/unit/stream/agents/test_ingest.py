"""The ingest gate's memory of persons it already forwarded."""

from __future__ import annotations

from stream.agents.ingest import KnownCache


def test_the_first_sight_of_a_person_is_forwarded_and_later_ones_are_not():
    cache = KnownCache(size=10)
    assert cache.seen(b"1:a") is False
    assert cache.seen(b"1:a") is True
    assert cache.seen(b"2:a") is False


def test_the_least_recently_seen_person_is_forgotten_first():
    """Scenario: forgetting only costs one more forwarded (stripped) event, never correctness."""
    cache = KnownCache(size=2)
    cache.seen(b"a")
    cache.seen(b"b")
    cache.seen(b"a")
    cache.seen(b"c")
    assert cache.seen(b"a") is True
    assert cache.seen(b"b") is False
