"""Backfilled events: counted exactly where live ingest did not count them, and never twice (design-engine §7)."""

from __future__ import annotations

import pytest

from cohorts.timestamps import parse_timestamp
from cohorts.wire import BackfillInput, EventInput
from stream.agents.person import check_backfill
from stream.catalog import TeamCatalog
from stream.fold import Flip, apply_backfill, apply_event
from stream.state.codec import decode, encode
from stream.state.record import SOURCE_BACKFILL, SOURCE_CONTROL, SOURCE_EVENTS, MatcherState, PersonRecord
from tests.unit.stream.cohort_records import catalog_of, group, performed_multiple, person_prop, record

NOW = parse_timestamp("2025-01-15 12:00:00")
DAY = 86_400_000_000


def team_counting(operator: str = "eq", count: int = 3) -> TeamCatalog:
    """One cohort: performed `checkout` `operator` `count` times in the last 7 days."""
    return catalog_of((10, record(10, group(performed_multiple("checkout", operator, count)), version=2))).team(1)


def matcher_of(team: TeamCatalog) -> str:
    return team.by_event["checkout"][0].matcher_hash


def live(rec: PersonRecord | None, team: TeamCatalog, offset: int, partition: int = 0) -> PersonRecord:
    item = EventInput(team_id=1, person_id="p1", event="checkout", timestamp_us=NOW - DAY, properties={})
    result = apply_event(rec, item, (SOURCE_EVENTS, partition, offset), team, NOW)
    assert result.record is not None
    return decode(encode(result.record))


def past(
    offset: int, team: TeamCatalog, partition: int = 0, *, event: str = "checkout", matchers: list[str] | None = None,
    **properties: object,
) -> BackfillInput:  # fmt: skip
    return BackfillInput(
        team_id=1,
        person_id="p1",
        event=event,
        timestamp_us=NOW - 2 * DAY,
        properties=dict(properties),
        matchers=[matcher_of(team)] if matchers is None else matchers,
        source=("clickhouse_events_json", partition, offset),
    )


def fold(rec: PersonRecord | None, item: BackfillInput, team: TeamCatalog):
    result = apply_backfill(None if rec is None else decode(encode(rec)), item, team, NOW)
    if result.record is not None:
        result.record = decode(encode(result.record))
    return result


def day_count(rec: PersonRecord, team: TeamCatalog) -> int:
    return sum(rec.matchers[matcher_of(team)].buckets["day"].values())


def test_events_before_the_first_live_count_are_counted_and_make_the_person_enter():
    """Scenario: the cohort appeared after two checkouts (offsets 3, 5) were ingested; live counting
    began at offset 10. Backfilling 3 and 5 brings the count to 3: the person enters."""
    team = team_counting("eq", 3)
    rec = live(None, team, 10)
    assert rec.members == {}
    first = fold(rec, past(3, team), team)
    assert first.outcome == "backfilled" and first.flips == []
    second = fold(first.record, past(5, team), team)
    assert second.flips == [Flip(1, "p1", 10, True, 2, NOW)]
    state = second.record.matchers[matcher_of(team)]
    assert state.live_from == {0: 10} and state.backfilled == {0: 5}
    assert day_count(second.record, team) == 3


def test_an_event_live_ingest_already_counted_is_not_counted_again():
    """Offsets at or above the first live count of that partition were counted live."""
    team = team_counting("eq", 2)
    rec = live(live(None, team, 10), team, 11)
    assert rec.members == {10: 2}
    for offset in (10, 11, 12):
        result = fold(rec, past(offset, team), team)
        assert (result.outcome, result.record, result.flips) == ("unchanged", None, [])


def test_a_backfilled_event_sent_twice_counts_once_and_re_emits_its_flips():
    """Scenario: the worker wrote the record and crashed before producing the flip; the backfill
    input is read again and must re-send the flip without counting the event twice."""
    team = team_counting("eq", 2)
    rec = live(None, team, 10)
    applied = fold(rec, past(4, team), team)
    assert applied.flips == [Flip(1, "p1", 10, True, 2, NOW)]
    again = fold(applied.record, past(4, team), team)
    assert again.outcome == "replayed" and again.record is None
    assert again.flips == applied.flips
    assert applied.record.outbox.flips()[-1].origin == (SOURCE_BACKFILL, 0, 4)
    older = fold(applied.record, past(2, team), team)
    assert older.outcome == "replayed" and older.record is None


def test_live_counting_on_one_partition_does_not_cover_another():
    team = team_counting("eq", 2)
    rec = live(None, team, 10, partition=1)
    result = fold(rec, past(50, team, partition=0), team)
    assert result.outcome == "backfilled" and result.flips == [Flip(1, "p1", 10, True, 2, NOW)]
    assert result.record.matchers[matcher_of(team)].live_from == {1: 10}


def test_a_person_unknown_to_the_worker_gets_a_record_and_is_evaluated():
    team = team_counting("gte", 1)
    result = fold(None, past(7, team), team)
    assert result.outcome == "backfilled" and result.record.known
    assert result.flips == [Flip(1, "p1", 10, True, 2, NOW)]
    assert result.record.matchers[matcher_of(team)].live_from == {}
    assert result.record.applied == {}  # the live idempotence map is not the backfill's


def test_a_later_live_event_still_counts_after_a_backfill():
    team = team_counting("eq", 2)
    filled = fold(None, past(7, team), team)
    rec = live(filled.record, team, 20)
    assert rec.members == {10: 2}
    assert rec.matchers[matcher_of(team)].live_from == {0: 20}


def test_matchers_the_worker_no_longer_tracks_and_other_events_are_ignored():
    team = team_counting("gte", 1)
    for item in (
        past(7, team, matchers=["0" * 16]),
        past(7, team, event="signup"),
        past(7, team, matchers=[]),
    ):
        result = fold(None, item, team)
        assert (result.outcome, result.record, result.flips) == ("unchanged", None, [])


def test_event_filters_decide_as_they_do_live():
    leaf = performed_multiple("checkout", "gte", 1) | {
        "event_filters": [{"key": "plan", "value": "pro", "operator": "exact", "type": "event"}]
    }
    team = catalog_of((10, record(10, group(leaf)))).team(1)
    assert fold(None, past(7, team, plan="free"), team).outcome == "unchanged"
    assert fold(None, past(7, team, plan="pro"), team).flips[0].entered


def test_a_deleted_person_is_not_backfilled():
    team = catalog_of((10, record(10, group(person_prop("plan", "pro"))))).team(1)
    rec = PersonRecord(known=True, deleted=True)
    assert fold(rec, past(7, team, matchers=["x"]), team).outcome == "deleted_person"


def test_matcher_state_of_a_format_1_record_is_never_backfilled():
    """Format 1 did not record where live counting began: counting anything could count twice."""
    team = team_counting("gte", 1)
    rec = PersonRecord(known=True, matchers={matcher_of(team): MatcherState(None, {}, [], live_from=None)})
    assert fold(rec, past(7, team), team).outcome == "unchanged"


def test_coverage_survives_the_codec():
    state = MatcherState(5, {"day": {3: 1}}, [], live_from={0: 10, 3: 7}, backfilled={0: 4})
    rec = PersonRecord(known=True, matchers={"m": state})
    assert decode(encode(rec)).matchers["m"] == state
    unknown = PersonRecord(known=True, matchers={"m": MatcherState(5, {}, [], live_from=None)})
    assert decode(encode(unknown)).matchers["m"].live_from is None


@pytest.mark.parametrize(
    ("source_code", "source", "matchers", "reason"),
    [
        (SOURCE_CONTROL, ("cohort_control", 0, 1), ["m"], "not the events topic"),
        (SOURCE_EVENTS, ("clickhouse_events_json", -1, 1), ["m"], "must be integers"),
        (SOURCE_EVENTS, ("clickhouse_events_json", 0, "1"), ["m"], "must be integers"),
        (SOURCE_EVENTS, ("clickhouse_events_json", 0, 1), "m", "list of strings"),
        (SOURCE_EVENTS, ("clickhouse_events_json", 0, 1), [1], "list of strings"),
    ],
)
def test_malformed_backfill_inputs_are_refused(source_code, source, matchers, reason):
    item = BackfillInput(1, "p1", "checkout", NOW, {}, matchers, source)
    with pytest.raises(ValueError, match=reason):
        check_backfill(item, source_code)
