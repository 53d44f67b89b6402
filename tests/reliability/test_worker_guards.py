"""The guards the reliability scenarios made the worker grow, pinned without a broker.

Each test names the defect a scenario found (docs/reliability.md, "Defects found"): inputs that
crashed an agent or the whole worker, and faust commit behaviour that lost inputs after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from cohorts.wire import ControlMessage, DeadLetter, PersonInput, WireError
from stream.agents.control import check_fields
from stream.catalog import Catalog, parse_cohort_key, read_record
from stream.fast_producer import attach
from stream.metrics import WorkerMetrics
from stream.outputs import DEAD_LETTER_KEY_BYTES, DEAD_LETTER_VALUE_BYTES, Outputs
from stream.posthog import MAX_FORWARD_BYTES, MAX_ID_CHARS, Rejected, decode_event, decode_person, forwardable
from stream.safe_fetch import safe_fetching

pytestmark = pytest.mark.reliability

NOW_US = 1_741_621_041_123_456


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


def _event(**fields: Any) -> bytes:
    message = {"team_id": 7, "person_id": "p1", "event": "$pageview", "timestamp": "2025-03-10 10:00:00"}
    message.update(fields)
    return json.dumps(message).encode()


def _rejection(decode: Any, raw: bytes) -> str:
    with pytest.raises(Rejected) as info:
        decode(raw)
    return info.value.reason


# --- PostHog inputs -----------------------------------------------------------------------------


def test_an_id_longer_than_the_limit_is_refused_and_one_at_the_limit_accepted():
    decode = lambda raw: decode_event(raw, ("events", 0, 1), NOW_US)  # noqa: E731
    assert _rejection(decode, _event(person_id="p" * (MAX_ID_CHARS + 1))) == "invalid person_id"
    assert decode(_event(person_id="p" * MAX_ID_CHARS)).person_id == "p" * MAX_ID_CHARS


def test_integers_beyond_64_bits_are_refused_where_the_worker_stores_them():
    """Scenario: a person version of 2^64-1 crashed the fold (struct.error in the record header)."""
    person = {"id": "p1", "team_id": 7, "version": 2**64 - 1}
    assert _rejection(lambda raw: decode_person(raw, ("persons", 0, 1)), json.dumps(person).encode()) == (
        "invalid version"
    )
    person["version"] = 2**63 - 1
    assert decode_person(json.dumps(person).encode(), ("persons", 0, 1)).version == 2**63 - 1
    decode = lambda raw: decode_event(raw, ("events", 0, 1), NOW_US)  # noqa: E731
    assert _rejection(decode, _event(team_id=2**63)) == "invalid team_id"


def test_properties_nested_deeper_than_orjson_writes_are_refused_not_a_crash():
    """Scenario: properties 400 levels deep decode (orjson reads 1,024) but crashed ingest on re-encoding."""
    item = decode_event(_event(properties=_nested(400)), ("events", 0, 1), NOW_US)
    with pytest.raises(Rejected, match="invalid properties"):
        forwardable(item, b"7:p1")
    shallow = decode_event(_event(properties=_nested(200)), ("events", 0, 1), NOW_US)
    assert orjson.loads(forwardable(shallow, b"7:p1"))["person_id"] == "p1"


def test_a_forwarded_input_too_large_to_produce_is_refused_as_oversized():
    """Scenario: a 1,000,000-byte property passed the 1 MiB input check, then crashed the producer."""
    base = {"team_id": 7, "person_id": "p1", "properties": {}, "version": 1, "source": ("persons", 0, 1)}
    small = PersonInput(**base)
    room = MAX_FORWARD_BYTES - len(forwardable(small, b"7:p1")) - len(b"7:p1")
    fits = PersonInput(**{**base, "properties": {"": "x" * (room - len('"":""'))}})
    assert len(forwardable(fits, b"7:p1")) + len(b"7:p1") == MAX_FORWARD_BYTES
    too_big = PersonInput(**{**base, "properties": {"": "x" * (room - len('"":""') + 1)}})
    with pytest.raises(Rejected, match="oversized"):
        forwardable(too_big, b"7:p1")


# --- control ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"type": ["tick"]},
        {"type": "explode"},
        {"type": "tick", "now_us": "soon"},
        {"type": "tick", "now_us": 1.5e300},
        {"type": "tick", "now_us": -5},
        {"type": "tick", "now_us": 253_402_300_800_000_000},
        {"type": "recalculate", "cohort_id": "x"},
        {"type": "recalculate", "cohort_id": True},
        {"type": "static_add", "team_id": 7, "cohort_id": 2**64 - 1, "person_id": "p"},
        {"type": "static_add", "team_id": 7, "cohort_id": 1, "person_id": ""},
        {"type": "static_add", "team_id": 7, "cohort_id": 1, "person_id": 42},
    ],
)
def test_control_fields_of_the_wrong_type_are_refused(fields: dict[str, Any]):
    """Scenario: a tick with now_us "soon" crashed the control agent comparing it with deadlines."""
    message = ControlMessage(**{"type": "tick", **fields})
    with pytest.raises(WireError):
        check_fields(message)


def test_control_messages_as_the_api_and_timer_write_them_pass():
    for message in (
        ControlMessage("tick"),
        ControlMessage("tick", now_us=253_402_300_799_999_999),
        ControlMessage("recalculate", team_id=7, cohort_id=1, version=3),
        ControlMessage("static_add", team_id=7, cohort_id=1, person_id="p" * MAX_ID_CHARS),
    ):
        check_fields(message)


# --- catalog ------------------------------------------------------------------------------------


def test_a_catalog_key_of_thousands_of_digits_is_not_a_cohort_id():
    """Scenario: a 5,000-digit key made int() raise in follow_catalog: the worker exited, and again
    on every restart (the catalog is read from the beginning)."""
    assert parse_cohort_key(b"9" * 5_000) is None
    assert parse_cohort_key(b"9223372036854775808") is None  # 2^63
    assert parse_cohort_key(b"9223372036854775807") == 2**63 - 1
    assert parse_cohort_key(b"42") == 42


@pytest.mark.parametrize(
    "fields",
    [
        {"team_id": "7"},
        {"version": "2"},
        {"version": -1},
        {"is_static": "yes"},
        {"deleted": 1},
        {"filters": "everyone"},
        {"name": ["x"]},
        {"id": 43},
        {"id": 42.0},
    ],
)
def test_catalog_records_with_fields_of_the_wrong_type_are_refused(fields: dict[str, Any]):
    value = {"id": 42, "team_id": 7, "version": 1, "filters": {}}
    value.update(fields)
    raw = orjson.dumps(value)
    with pytest.raises(WireError):
        read_record(42, raw)
    catalog = Catalog()
    update = catalog.apply(b"42", raw, 0)
    assert update is not None and update.error is not None and catalog.cohort(42) is None


# --- outputs ------------------------------------------------------------------------------------


def test_a_dead_letter_keeps_a_bounded_part_of_an_enormous_message():
    """Scenario: a 1.3 MB bad message became a 1.7 MB dead letter, which the producer refused."""
    sent: list[tuple[bytes | None, bytes]] = []

    class Channel:
        async def send(self, *, key: bytes | None, value: bytes) -> None:
            sent.append((key, value))

        def get_topic_name(self) -> str:
            return "cohort_dead_letters"

    outputs = Outputs(SimpleNamespace(dead_letters=Channel()), WorkerMetrics(), 4)
    value = b"v" * 1_300_000
    asyncio.run(outputs.dead_letter("oversized", "events", 1, 2, b"k" * 300_000, value))
    ((key, letter_bytes),) = sent
    letter = DeadLetter.from_bytes(letter_bytes)
    assert letter.original == value[:DEAD_LETTER_VALUE_BYTES]
    assert key == b"k" * DEAD_LETTER_KEY_BYTES
    assert len(letter_bytes) + len(key) < 1_000_000


# --- faust commit behaviour --------------------------------------------------------------------


def test_a_commit_first_sends_waiting_inputs_then_waits_for_every_acknowledgement_then_notes_offsets():
    """Scenario (defect 3 of docs/reliability.md, in today's shape): faust committed input offsets
    while the state changes they caused were still on their way. The pre-commit flush must send the
    input batches still in memory, wait until Kafka acknowledged everything sent before it (the
    changelog writes included), and only then note changelog offsets."""
    calls: list[str] = []

    class _Fast:
        async def flush(self) -> None:
            calls.append("fast flush begins")
            await asyncio.sleep(0.05)
            calls.append("fast flush acknowledged")

    async def faust_flush() -> None:
        calls.append("faust flush")

    producer = SimpleNamespace(flush=faust_flush)
    attach(
        SimpleNamespace(producer=producer),
        _Fast(),
        before=[lambda: calls.append("input batches sent")],
        after=[lambda: calls.append("changelog offsets noted")],
    )
    asyncio.run(producer.flush())
    assert calls == [
        "input batches sent",
        "faust flush",
        "fast flush begins",
        "fast flush acknowledged",
        "changelog offsets noted",
    ]


class _Consumer:
    """faust's Consumer bookkeeping of fetched ("active") partitions, reduced to what matters here."""

    def __init__(self) -> None:
        self.active: set[TP] = set()
        self.asked: list[Any] = []
        self.acked: list[int] = []
        self.flow_active = True
        #: Set: a fetch waits for it to be set before it returns (a fetch under way).
        self.fetch_returns: asyncio.Event | None = None
        #: The offset of the record a fetch returns, per partition (0 if never sought).
        self.position: dict[TP, int] = {}
        self.sought: list[tuple[TP, int]] = []
        self.assigned: set[TP] = set()
        self._committed_offset: dict[TP, int | None] = {}
        if not hasattr(self, "_thread"):  # a test's subclass may bring its own
            self._thread = SimpleNamespace(seek_to_beginning=self._seek_to_beginning)

    def _is_changelog_tp(self, tp: TP) -> bool:
        return tp.topic.endswith("-changelog")

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.assigned = set(assigned)
        self._set_active_tps(assigned)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def _seek_to_beginning(self, *tps: TP) -> None:
        if not all(isinstance(tp, TopicPartition) for tp in tps):  # as aiokafka
            raise TypeError("partitions must be TopicPartition instances")
        for tp in tps:
            await self.seek(tp, 0)

    def _set_active_tps(self, tps: set[TP]) -> set[TP]:
        self.active.clear()
        self.active.update(tps)
        return self.active

    def resume_partitions(self, tps: set[TP]) -> None:
        self.active.update(tps)

    async def perform_seek(self) -> None:
        return None

    def stop_flow(self) -> None:
        self.flow_active = False

    def resume_flow(self) -> None:
        self.flow_active = True

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return {}

    async def _getmany(self, active_partitions: Any, timeout: float) -> dict[TP, list[int]]:
        self.asked.append(active_partitions)
        if self.fetch_returns is not None:
            await self.fetch_returns.wait()
        return {tp: [SimpleNamespace(offset=self.position.get(tp, 0))] for tp in active_partitions or ()}

    async def seek(self, tp: TP, offset: int) -> None:
        self.position[tp] = offset
        self.sought.append((tp, offset))

    def ack(self, message: Any) -> bool:
        self.acked.append(message.offset)
        return True


def _safe_consumer() -> Any:
    app = SimpleNamespace(transport=SimpleNamespace(Consumer=_Consumer))
    safe_fetching(app)
    return app.transport.Consumer()


def test_an_assigned_input_partition_is_fetched_only_after_the_seek_to_its_committed_offset():
    """Scenario: after a restart, faust fetched input partitions before seeking them to their
    committed offsets; the late part of that batch made it skip inputs nobody processed."""
    events, changelog = TP("events", 0), TP("persons-changelog", 0)

    async def scenario() -> list[set[TP]]:
        consumer = _safe_consumer()
        await consumer.on_partitions_assigned({events, changelog})
        seen = [set(consumer.active)]
        consumer.resume_partitions({events, changelog})
        seen.append(set(consumer.active))
        await consumer.perform_seek()
        seen.append(set(consumer.active))
        consumer.resume_flow()
        seen.append(set(consumer.active))
        return seen

    assigned, resumed, sought, flowing = asyncio.run(scenario())
    assert assigned == resumed == sought == {changelog}
    assert flowing == {events, changelog}


def test_the_fetch_loops_own_seek_during_a_rebalance_does_not_release_the_input_partitions():
    """Scenario 2: a fetch returned while the flow was stopped for a rebalance, after the new
    assignment; faust's fetch loop then seeks (`Consumer.getmany`). Counted as the seek, it let the
    recovery's first `resume_flow` release the control partitions while the changelog was being
    restored, and the restore overwrote the static adds taken then. Expected: the input partitions
    wait for the recovery's own seek, made once its flow runs again."""
    control, changelog = TP("control", 3), TP("persons-changelog", 3)

    async def scenario() -> list[set[TP]]:
        consumer = _safe_consumer()
        consumer.stop_flow()  # faust's on_partitions_revoked
        await consumer.on_partitions_assigned({control, changelog})
        await consumer.perform_seek()  # the fetch loop, flow stopped
        consumer.resume_partitions({changelog})
        consumer.resume_flow()  # the recovery starts reading the changelog
        seen = [set(consumer.active)]
        await consumer.perform_seek()  # the recovery is done: seek the inputs
        consumer.resume_flow()
        seen.append(set(consumer.active))
        return seen

    restoring, recovered = asyncio.run(scenario())
    assert restoring == {changelog}
    assert recovered == {control, changelog}


@pytest.mark.parametrize(
    ("returns", "committed", "sought"),
    [
        ("before the recovery's seek", 8, []),
        ("after the recovery's seek", 8, [8]),
        ("after the recovery's seek", None, [0]),
    ],
)
def test_a_fetch_that_spans_an_assignment_hands_on_no_input_record_and_leaves_them_to_be_read_again(
    returns: str, committed: int | None, sought: list[int]
):
    """test_rebalance_recalculations: a fetch asked for with the previous assignment's partitions
    returned after the new one, with records of a kept control partition from before its seek
    (offset 25, committed 8). faust handed them on; the seek set the read offset back to 8, and the
    next record of the batch filed 9-25 as a gap, committed as processed: 10 recalculations never
    ran. Expected: the fetch's input records are dropped, changelog records kept, and the kept
    partition is read from its committed offset: by the recovery's seek if still to come, else by
    a seek made again (to the beginning if it was never committed, as fix 3)."""
    kept, revoked, changelog = TP("control", 3), TP("control", 2), TP("persons-changelog", 3)

    async def scenario() -> tuple[Any, dict[TP, list[Any]]]:
        consumer = _safe_consumer()
        await consumer.on_partitions_assigned({kept, revoked, changelog})
        await consumer.perform_seek()
        consumer.resume_flow()
        consumer.position[kept] = 25
        consumer.fetch_returns = asyncio.Event()
        under_way = asyncio.ensure_future(consumer._getmany(set(consumer.active), 1.0))
        await asyncio.sleep(0)
        consumer.stop_flow()  # the rebalance begins
        await consumer.on_partitions_assigned({kept, changelog})
        if returns == "after the recovery's seek":
            consumer.resume_flow()
            await consumer.perform_seek()  # the stand-in notes the committed offsets, seeks nothing
            consumer._committed_offset[kept] = committed
            consumer.resume_flow()
        consumer.fetch_returns.set()
        return consumer, await under_way

    consumer, handed_on = asyncio.run(scenario())
    assert list(handed_on) == [changelog]
    assert consumer.sought == [(kept, offset) for offset in sought]


def test_the_fetch_gets_a_copy_of_the_active_partitions_and_none_when_there_are_none():
    """Scenario: aiokafka fetched every partition for an emptied live set; faust dropped the records."""

    async def scenario() -> tuple[dict, dict, Any]:
        consumer = _safe_consumer()
        live = {TP("events", 0)}
        got = await consumer._getmany(live, 1.0)
        live.clear()
        empty = await consumer._getmany(live, 1.0)
        return got, empty, consumer.asked

    got, empty, asked = asyncio.run(scenario())
    assert list(got) == [TP("events", 0)] and empty == {}
    assert asked == [frozenset({TP("events", 0)})]


def test_partitions_without_a_commit_are_read_again_from_their_beginning_after_a_rebalance():
    """Scenario: the first catalog record was queued when a second worker joined; faust dropped the
    queue and sought back to committed offsets, but aiokafka moves no partition committed at None
    or 0, so that record was never delivered again and its cohort never calculated."""
    rewound: list[TP] = []

    class Thread:
        async def seek_to_beginning(self, *partitions: TP) -> None:
            rewound.extend(partitions)

    class Base(_Consumer):
        _thread = Thread()

        async def seek_to_committed(self) -> dict[TP, int | None]:
            return {TP("catalog", 0): None, TP("control", 0): 0, TP("control", 1): 87}

    app = SimpleNamespace(transport=SimpleNamespace(Consumer=Base))
    safe_fetching(app)
    committed = asyncio.run(app.transport.Consumer().seek_to_committed())
    assert committed[TP("control", 1)] == 87
    assert rewound == [TP("catalog", 0), TP("control", 0)]


def test_a_record_a_stream_skipped_is_not_counted_as_processed():
    """Scenario: during a rebalance a stream skipped recalculations (suspended flow, or fetched in the
    previous generation) and acknowledged them untracked; faust, which had forgotten the committed
    offset, committed past them and they were never processed. Expected: the acknowledgement of an
    untracked record records nothing; a tracked (processed) record's still counts."""
    consumer = _safe_consumer()
    processed = ConsumerMessage("control", 0, 116, 0.0, 0, None, b"k", b"v", None, tp=TP("control", 0))
    skipped_one = ConsumerMessage("control", 0, 117, 0.0, 0, None, b"k", b"v", None, tp=TP("control", 0))
    processed.tracked = True  # what Stream._py_aiter does before handing a record to the agent
    assert consumer.ack(skipped_one) is False
    assert consumer.ack(processed) is True
    assert consumer.acked == [116]


def test_the_livelock_check_passes_over_a_partition_that_has_no_position_yet():
    """Scenario: a table recovery outlasted faust's livelock interval while an input partition was
    still held back until its seek; aiokafka asserted that the partition had a position, and the
    worker crashed mid-rebalance. Expected: such a partition is skipped, one with a position checked."""
    control, changelog = TP("control", 1), TP("persons-changelog", 1)
    checked: list[TP] = []

    class _Positions(_Consumer):
        def verify_event_path(self, now: float, tp: TP) -> None:
            assert tp in self.position, "no position yet"  # as aiokafka's `TopicPartitionState.position`
            checked.append(tp)

    app = SimpleNamespace(transport=SimpleNamespace(Consumer=_Positions))
    safe_fetching(app)
    consumer = app.transport.Consumer()
    consumer.position[changelog] = 5
    for tp in (control, changelog):
        consumer.verify_event_path(0.0, tp)
    assert checked == [changelog]
