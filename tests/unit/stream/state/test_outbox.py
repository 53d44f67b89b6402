"""The outbox: appended and trimmed the same whether it holds flips or the codec's groups."""

from __future__ import annotations

import pytest

from stream.fold import Flip
from stream.state.record import Outbox, OutboxFlip


def _flips(at_us: int, *cohorts: int) -> list[Flip]:
    return [Flip(1, "p", cohort_id, cohort_id % 2 == 0, 3, at_us) for cohort_id in cohorts]


def _both() -> tuple[Outbox, Outbox]:
    """The same three inputs' flips, one outbox holding flips, the other the codec's groups."""
    grouped = Outbox()  # an empty outbox appends as groups
    grouped.add(_flips(10, 1, 2, 3), (1, 0, 5))
    grouped.add(_flips(11, 4), (3, 2, 7))
    grouped.add(_flips(12, 5, 6), (1, 1, 9))
    listed = Outbox(Outbox.from_groups([list(group) for group in grouped.groups()]).flips())
    return listed, grouped


def test_groups_are_one_per_input_and_instant():
    listed, _ = _both()
    assert listed.groups() == [
        [1, 0, 5, 10, 1, 0, 3, 2, 1, 3, 3, 0, 3],
        [3, 2, 7, 11, 4, 1, 3],
        [1, 1, 9, 12, 5, 0, 3, 6, 1, 3],
    ]


def test_both_forms_hold_the_same_flips():
    listed, grouped = _both()
    assert len(grouped) == len(listed) == 6
    assert grouped.flips() == listed.flips()
    assert grouped[0] == OutboxFlip(1, False, 3, 10, (1, 0, 5))
    assert type(grouped[1].entered) is bool


@pytest.mark.parametrize("limit", [6, 5, 4, 3, 1, 0])
def test_trimming_keeps_the_newest_flips_in_either_form(limit: int):
    """Scenario: a limit falling inside the oldest group keeps the tail of that group."""
    listed, grouped = _both()
    expected = listed.flips()[len(listed) - limit :] if limit else []
    listed.trim(limit)
    grouped.trim(limit)
    assert len(grouped) == len(listed) == limit
    assert listed.groups() == grouped.groups()
    assert grouped.flips() == listed.flips() == expected


def test_appending_to_groups_gives_the_groups_flips_would_give():
    listed, grouped = _both()
    for outbox in (listed, grouped):
        outbox.add(_flips(13, 7), (3, 0, 11))
    assert grouped.groups() == listed.groups()
    assert grouped.highest_offset(3) == listed.highest_offset(3) == 11
    assert grouped.highest_offset(4) == -1


@pytest.mark.parametrize("group", [[1, 0, 5, 10], [1, 0, 5, 10, 1, 1], "x", [1, 0, 5, 10, 1, 1, 3, 9]])
def test_a_group_of_the_wrong_shape_is_refused(group):
    with pytest.raises(ValueError, match="wrong shape"):
        Outbox.from_groups([group])
