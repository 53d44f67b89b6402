"""`cohorts status`: the state of a deployment at a glance, read from Kafka alone.

`collect_status` gathers, without joining any consumer group or committing anything:
- every topic of design §3 with its partition count (and the configured one) and offset span;
- each worker consumer group's committed offsets and lag on the topics it consumes: ingest
  (`{prefix}cohorts-worker-ingest`), the person fold (`{prefix}cohorts-worker-fold`, positions only:
  its readers are the faust group's members) and the faust app (`{prefix}cohorts-worker`),
  `Topics.worker_groups`;
- the number of cohorts in `cohort_catalog` (compacted, key = cohort id; a tombstone removes it,
  `deleted: true` is a soft delete, other keys such as the api's `reserve:<uuid>` are skipped);
- the last few membership flips of `cohort_membership_changed`.
The result is plain JSON-able data; `render_status` turns it into text a person reads at a glance.

Never: commit offsets, join a group, or write to any topic. Status must be safe to run against a
production cluster at any time.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import OFFSET_INVALID, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from cli.kafka_read import Range, list_offsets, read_ranges, settled
from cli.tail import format_change
from cohorts.settings import Settings
from cohorts.topics import Topics
from cohorts.wire import CatalogRecord, MembershipChange, WireError
from infra.kafka_admin import admin_client

__all__ = ["collect_status", "render_status", "worker_group"]


def worker_group(settings: Settings) -> str:
    """The worker's faust consumer group (`stream.app.worker_app_id`)."""
    return Topics(prefix=settings.topic_prefix).worker_group


def collect_status(settings: Settings, *, flips: int = 5, timeout_s: float = 10.0) -> dict[str, Any]:
    """Everything `render_status` shows; raises ConnectionError when the cluster does not answer."""
    try:
        return _collect(settings, flips, timeout_s)
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {settings.bootstrap}: {exc.args[0].str()}") from exc


def _collect(settings: Settings, flips: int, timeout_s: float) -> dict[str, Any]:
    topics = Topics(prefix=settings.topic_prefix, partitions=settings.partitions)
    admin = admin_client(settings.bootstrap)
    metadata = admin.list_topics(timeout=timeout_s)
    partitions = {name: len(t.partitions) for name, t in metadata.topics.items() if not t.error}
    specs = topics.specs()
    present = [TopicPartition(s.name, p) for s in specs if s.name in partitions for p in range(partitions[s.name])]
    low = list_offsets(admin, present, OffsetSpec.earliest(), timeout_s)
    high = list_offsets(admin, present, OffsetSpec.latest(), timeout_s)
    spans = {tp: (low[tp], high[tp]) for tp in low.keys() & high.keys()}
    return {
        "bootstrap": settings.bootstrap,
        "topic_prefix": settings.topic_prefix,
        "topics": [
            {
                "name": s.name,
                "partitions": partitions.get(s.name),
                "expected_partitions": s.partitions,
                "compacted": s.config.get("cleanup.policy") == "compact",
                "messages": _span_total(spans, s.name) if s.name in partitions else None,
            }
            for s in specs
        ],
        "worker_groups": _worker_groups(admin, topics, spans, timeout_s),
        **_read_tails(settings, topics, spans, flips, timeout_s),
    }


def _worker_groups(
    admin: AdminClient, topics: Topics, spans: dict[tuple[str, int], Range], timeout_s: float
) -> list[dict[str, Any]]:
    """Each worker group's lag; a group that only keeps positions shows the members of the group it follows
    (it has none of its own to describe)."""
    followed = topics.followed_groups()
    described = {
        group: _described(admin, group, timeout_s) for group in topics.worker_groups() if group not in followed
    }
    groups = []
    for group, inputs in topics.worker_groups().items():
        if group in followed:
            state, members = f"read by {followed[group]}", described[followed[group]][1]
        else:
            state, members = described[group]
        groups.append(
            {"group": group, "state": state, "members": members, **_group_lag(admin, group, inputs, spans, timeout_s)}
        )
    return groups


def _described(admin: AdminClient, group: str, timeout_s: float) -> tuple[str, int]:
    """A consumer group's state and member count."""
    description = settled(
        lambda: admin.describe_consumer_groups([group], request_timeout=timeout_s)[group].result(timeout=timeout_s),
        timeout_s,
    )
    return description.state.name.lower(), len(description.members)


def _span_total(spans: dict[tuple[str, int], Range], topic: str) -> int:
    """High minus low watermark, summed: the message count (an upper bound on a compacted topic)."""
    return sum(end - start for (name, _), (start, end) in spans.items() if name == topic)


def _group_lag(
    admin: AdminClient, group: str, inputs: list[str], spans: dict[tuple[str, int], Range], timeout_s: float
) -> dict[str, Any]:
    """Committed offsets against high watermarks; a partition with nothing committed lags by all it holds."""
    consumed = sorted((tp for tp in spans if tp[0] in inputs), key=lambda tp: (inputs.index(tp[0]), tp[1]))
    committed: dict[tuple[str, int], int] = {}
    if consumed:
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in consumed])
        answer = settled(
            lambda: admin.list_consumer_group_offsets([request], request_timeout=timeout_s)[group].result(
                timeout=timeout_s
            ),
            timeout_s,
        )
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions if tp.offset != OFFSET_INVALID
        }
    by_topic: dict[str, dict[str, Any]] = {}
    for tp in consumed:
        start, end = spans[tp]
        row = by_topic.setdefault(tp[0], {"name": tp[0], "lag": 0, "partitions_committed": 0, "partitions": 0})
        row["partitions"] += 1
        if tp in committed:
            row["partitions_committed"] += 1
        row["lag"] += max(0, end - max(committed.get(tp, start), start))
    return {
        "lag": sum(row["lag"] for row in by_topic.values()),
        "topics": list(by_topic.values()),
    }


def _read_tails(
    settings: Settings, topics: Topics, spans: dict[tuple[str, int], Range], flips: int, timeout_s: float
) -> dict[str, Any]:
    """The whole catalog partition and the last `flips` messages of each membership partition, in one pass."""
    ranges = {tp: span for tp, span in spans.items() if tp[0] == topics.catalog and span[0] < span[1]}
    ranges |= {
        tp: (max(start, end - flips), end)
        for tp, (start, end) in spans.items()
        if tp[0] == topics.membership_changed and start < end and flips > 0
    }
    cohorts: dict[str, bool] = {}  # cohort id -> deleted
    unreadable = 0
    changes: list[tuple[int, int, int, MembershipChange]] = []
    for message in read_ranges(settings, ranges, timeout_s):
        key, value = message.key(), message.value()
        if message.topic() == topics.catalog:
            cohort_id = key.decode("utf-8", "replace") if key else ""
            if not cohort_id.isdecimal():
                continue
            if value is None:
                cohorts.pop(cohort_id, None)
                continue
            try:
                cohorts[cohort_id] = CatalogRecord.from_bytes(value).deleted
            except WireError:
                unreadable += 1
        else:
            try:
                change = MembershipChange.from_bytes(value or b"")
            except WireError:
                unreadable += 1
                continue
            changes.append((message.timestamp()[1], message.partition(), message.offset(), change))
    changes.sort(key=lambda item: item[:3])
    deleted = sum(cohorts.values())
    return {
        "catalog": {"cohorts": len(cohorts) - deleted, "deleted": deleted},
        "recent_flips": [change.to_dict() for *_, change in changes[-flips:]] if flips > 0 else [],
        "unreadable_messages": unreadable,
    }


def render_status(status: dict[str, Any]) -> str:
    """Text for a terminal: a verdict line, then topics, worker group lag, catalog, last flips."""
    header = f"Kafka {status['bootstrap']}" + (f"  prefix {status['topic_prefix']}" if status["topic_prefix"] else "")
    lines = [header, _verdict(status), "", "Topics"]
    width = max((len(t["name"]) for t in status["topics"]), default=0)
    for topic in status["topics"]:
        lines.append(f"  {topic['name']:<{width}}  {_topic_cell(topic)}")
    for worker in status["worker_groups"]:
        members = _plural(worker["members"], "member") if worker["members"] else "no members (no worker running)"
        lines += ["", f"Worker group {worker['group']}: {worker['state']}, {members}, lag {worker['lag']:,}"]
        for row in worker["topics"]:
            note = "" if row["partitions_committed"] else "  (nothing committed yet)"
            lines.append(f"  {row['name']:<{width}}  lag {row['lag']:>12,}{note}")
    catalog = status["catalog"]
    lines += ["", f"Catalog: {_plural(catalog['cohorts'], 'cohort')} ({catalog['deleted']:,} deleted)"]
    flips = status["recent_flips"]
    lines += ["", f"Last {_plural(len(flips), 'membership flip')}" if flips else "Membership flips: none yet"]
    lines += [f"  {format_change(MembershipChange.from_dict(flip))}" for flip in flips]
    if status.get("unreadable_messages"):
        lines += ["", f"Unreadable messages skipped: {status['unreadable_messages']:,}"]
    return "\n".join(line.rstrip() for line in lines)


def _verdict(status: dict[str, Any]) -> str:
    """One line that says whether anything needs attention, and what."""
    problems = [f"topic missing: {t['name']}" for t in status["topics"] if t["partitions"] is None]
    problems += [
        f"partition mismatch: {t['name']}"
        for t in status["topics"]
        if t["partitions"] is not None and t["partitions"] != t["expected_partitions"]
    ]
    if not all(worker["members"] for worker in status["worker_groups"]):
        problems.append("no worker running")
    if status.get("unreadable_messages"):
        problems.append("unreadable messages")
    return "OK" if not problems else "ATTENTION: " + "; ".join(problems)


def _topic_cell(topic: dict[str, Any]) -> str:
    if topic["partitions"] is None:
        return "MISSING (run `cohorts topics create`)"
    count = f"{topic['partitions']:>4} partition" + (" " if topic["partitions"] == 1 else "s")
    messages = f"{topic['messages']:>12,} message" + (" " if topic["messages"] == 1 else "s")
    mismatch = (
        ""
        if topic["partitions"] == topic["expected_partitions"]
        else f"  MISMATCH: configured {topic['expected_partitions']}"
    )
    compacted = "  compacted" if topic["compacted"] else ""
    return f"{count}  {messages}{compacted}{mismatch}"


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
