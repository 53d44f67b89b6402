"""Re-keyed inputs travel in per-partition batches; a bad input inside a batch is dead-lettered alone."""

from __future__ import annotations

import orjson
import pytest

from cohorts.topics import partition_for, person_key
from cohorts.wire import DeadLetter, EventInput, PersonInput, person_input_batch, split_person_input_batch
from stream.state.codec import decode
from tests.integration.worker_harness import TopicReader, posthog_event, produce, start_worker

pytestmark = pytest.mark.kafka

TEAM = 7
NOW_US = 1_735_725_600_000_000  # 2025-01-01 10:00 UTC


def _persons_on(partition: int, partitions: int, count: int, *, avoid: bool = False) -> list[str]:
    """`count` person ids whose key lands on `partition` (or, with `avoid`, anywhere else)."""
    found = []
    n = 0
    while len(found) < count:
        person = f"p{n}"
        n += 1
        on_it = partition_for(person_key(TEAM, person).encode(), partitions) == partition
        if on_it != avoid:
            found.append(person)
    return found


def test_a_batch_folds_its_good_inputs_and_dead_letters_each_bad_one_with_its_reason(
    make_topics, make_settings, tmp_path
):
    """Scenario: one message on cohort_person_inputs (partition 1) carries, in order: an event for
    p_a, a person record for p_b, an input without `kind`, the number 42, an event for a person of
    another partition, and an input nested deeper than orjson writes. Then a value that starts like
    a batch but is not JSON. Expected: p_a and p_b are written (changelog), and five dead letters
    name the batch's position: three "invalid person input" for the malformed elements (the deep one
    with no bytes, as it cannot be written back), one "wrong key or partition" holding the element
    as it came, and one "invalid person input" for the torn value."""
    topics = make_topics(partitions=4)
    settings = make_settings(topics, tmp_path)
    p_a, p_b = _persons_on(1, topics.partitions, 2)
    (elsewhere,) = _persons_on(1, topics.partitions, 1, avoid=True)
    source = (topics.events, 0, 0)
    good_event = EventInput(TEAM, p_a, "$pageview", NOW_US, {}, "u1", source).to_bytes()
    good_person = PersonInput.from_dict(
        {"team_id": TEAM, "person_id": p_b, "properties": {"plan": "pro"}, "version": 1,
         "is_deleted": False, "source": (topics.persons, 0, 0)}
    ).to_bytes()  # fmt: skip
    misplaced = EventInput(TEAM, elsewhere, "$pageview", NOW_US, {}, "u2", (topics.events, 0, 1)).to_bytes()
    too_deep = b'{"kind": "event", "properties": ' + b'{"a": ' * 300 + b"1" + b"}" * 301  # orjson cannot write it back
    elements = [good_event, good_person, b'{"team_id": 7, "person_id": "x"}', b"42", misplaced, too_deep]
    batch = person_input_batch(elements)
    assert [type(e) for e in split_person_input_batch(batch)] == [dict, dict, dict, int, dict, dict]

    worker = start_worker(settings, tmp_path, now_us=NOW_US)
    letters = TopicReader(settings.bootstrap, topics.dead_letters)
    changelog = TopicReader(settings.bootstrap, f"{topics.prefix}cohorts-worker-persons-changelog")
    try:
        key = person_key(TEAM, p_a).encode()
        produce(settings.bootstrap, topics.person_inputs, [(key, batch), (key, b"[not json")], partition=1)
        written = changelog.wait_for(lambda ms: {p_a.encode(), p_b.encode()} <= {k.split(b":")[1] for k, _ in ms})
        dead = letters.wait_for(lambda ms: len(ms) >= 5)
        records = {k: decode(v) for k, v in written}
        assert records[person_key(TEAM, p_b).encode()].properties == {"plan": "pro"}
        assert records[key].known
        assert person_key(TEAM, elsewhere).encode() not in records
        decoded = [DeadLetter.from_bytes(v) for _, v in dead]
        assert sorted(d.reason for d in decoded) == [
            "invalid person input",
            "invalid person input",
            "invalid person input",
            "invalid person input",
            "wrong key or partition",
        ]
        assert {(d.source_topic, d.source_partition) for d in decoded} == {(topics.person_inputs, 1)}
        assert sorted({d.source_offset for d in decoded}) == [0, 1]
        assert b"[not json" in {d.original for d in decoded}
        misplaced_letter = next(d for d in decoded if d.reason == "wrong key or partition")
        assert orjson.loads(misplaced_letter.original) == orjson.loads(misplaced)  # the element as it came
        assert b"" in {d.original for d in decoded}  # the one orjson cannot write back
    finally:
        letters.close()
        changelog.close()
        worker.stop()


def test_single_inputs_are_checked_as_before_batches_existed(make_topics, make_settings, tmp_path):
    """Scenario: lone inputs on partition 1 (what `cohorts backfill` and older builds write): a torn
    value, a value-less message, p_a's event under p_b's key, and p_b's event under its own key.
    Expected: p_b is written; the torn and empty values get "invalid person input", the mis-keyed
    one "wrong key or partition", each with its own offset and its bytes as they came."""
    topics = make_topics(partitions=4)
    settings = make_settings(topics, tmp_path)
    p_a, p_b = _persons_on(1, topics.partitions, 2)
    key_b = person_key(TEAM, p_b).encode()
    event_a = EventInput(TEAM, p_a, "$pageview", NOW_US, {}, "u1", (topics.events, 0, 0)).to_bytes()
    event_b = EventInput(TEAM, p_b, "$pageview", NOW_US, {}, "u2", (topics.events, 0, 1)).to_bytes()
    worker = start_worker(settings, tmp_path, now_us=NOW_US)
    letters = TopicReader(settings.bootstrap, topics.dead_letters)
    changelog = TopicReader(settings.bootstrap, f"{topics.prefix}cohorts-worker-persons-changelog")
    try:
        messages = [(key_b, b"{not json"), (key_b, None), (key_b, event_a), (key_b, event_b)]
        produce(settings.bootstrap, topics.person_inputs, messages, partition=1)
        written = changelog.wait_for(lambda ms: any(k == key_b for k, _ in ms))
        dead = letters.wait_for(lambda ms: len(ms) >= 3)
        assert person_key(TEAM, p_a).encode() not in {k for k, _ in written}
        decoded = sorted((DeadLetter.from_bytes(v) for _, v in dead), key=lambda d: d.source_offset)
        assert [(d.source_offset, d.reason, d.original) for d in decoded] == [
            (0, "invalid person input", b"{not json"),
            (1, "invalid person input", b""),
            (2, "wrong key or partition", event_a),
        ]
    finally:
        letters.close()
        changelog.close()
        worker.stop()


def test_ingest_sends_fewer_messages_than_inputs_and_every_person_is_folded(make_topics, make_settings, tmp_path):
    """Scenario: one PostHog event each for 200 persons arrives at once. Expected: every person gets
    a record, and cohort_person_inputs carries the 200 inputs in fewer messages (they were batched)."""
    topics = make_topics(partitions=4)
    settings = make_settings(topics, tmp_path)
    persons = [f"p{n}" for n in range(200)]
    events = [
        (f"u{n}".encode(), posthog_event(TEAM, person, "$pageview", NOW_US - n)) for n, person in enumerate(persons)
    ]
    worker = start_worker(settings, tmp_path, now_us=NOW_US)
    inputs = TopicReader(settings.bootstrap, topics.person_inputs)
    changelog = TopicReader(settings.bootstrap, f"{topics.prefix}cohorts-worker-persons-changelog")
    try:
        produce(settings.bootstrap, topics.events, events)
        expected = {person_key(TEAM, p).encode() for p in persons}
        changelog.wait_for(lambda ms: expected <= {k for k, _ in ms}, timeout_s=60)
        inputs.poll(1.0)
        carried = sum(len(split_person_input_batch(v)) if v.startswith(b"[") else 1 for _, v in inputs.messages)
        assert carried == 200
        assert len(inputs.messages) < 200
    finally:
        inputs.close()
        changelog.close()
        worker.stop()
