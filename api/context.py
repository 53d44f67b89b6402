"""Everything one api process holds open, wired once in the lifespan (never at import).

`open_context` opens the api's RocksDB (`data_dir/"api"`, read-write), the auth database
(`data_dir/"auth"`, read-only), the publisher and, unless told not to, the feeder that folds
every topic the views need: persons, distinct ids, membership changes, calculation reports, the
cohort catalog and the api log. `close` releases them in reverse order, so a restart in the
same process can reopen the same data dir.

Before anything is folded, `member_order.ensure_index` builds the persons-page order index of a
data dir folded before that index existed, and `persons.ensure_distinct_id_lists` rewrites its
distinct ids as one row per person (a new data dir is only marked).

The process's instance id (`meta:instance_id`, made on first open) names its transactional
producer, so a restarted process fences a previous run on the same data dir.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.api_log import apply_api_log
from api.auth_db import AuthDirectory
from api.consumers import Feeder, stored_positions
from api.metrics import ApiMetrics
from api.progress import Progress
from api.publisher import KafkaPublisher, MemoryPublisher, Publisher
from api.services.activity import ActivityLog
from api.services.cohort_list import ListPages
from api.services.cohort_persons import CohortPersons
from api.services.cohorts import CohortService
from api.services.file_system import FileSystemViews
from api.services.static_members import StaticMembers
from api.store import Store
from api.views.activity import ActivityView
from api.views.cohorts import CohortReader, apply_catalog
from api.views.file_system import FileSystemView
from api.views.member_order import MemberOrder, ensure_index
from api.views.membership import MembershipView, apply_change
from api.views.persons import PersonsView, apply_distinct_id, apply_person, ensure_distinct_id_lists
from api.views.record import Fold
from api.views.reports import ReportsView, apply_report
from api.views.static_members import StaticMembersView
from cohorts.settings import Settings
from cohorts.topics import Topics

__all__ = ["ApiContext", "Clock", "open_context", "system_clock", "view_folds"]

Clock = Callable[[], int]

_INSTANCE_KEY = b"meta:instance_id"


def system_clock() -> int:
    """Wall clock in epoch microseconds."""
    return time.time_ns() // 1000


def view_folds(topics: Topics, partitions: int) -> dict[str, Fold]:
    """topic -> the fold that applies its records to the views."""
    return {
        topics.persons: lambda batch, record: apply_person(batch, record.value),
        topics.distinct_ids: lambda batch, record: apply_distinct_id(batch, record.value),
        topics.membership_changed: lambda batch, record: apply_change(batch, record.value),
        topics.calculation_reports: lambda batch, record: apply_report(batch, record.value, partitions),
        topics.catalog: apply_catalog,
        topics.api_log: apply_api_log,
    }


def _instance_id(store: Store) -> str:
    instance = store.get(_INSTANCE_KEY)
    if not isinstance(instance, str):
        instance = uuid.uuid4().hex
        store.put(_INSTANCE_KEY, instance)
    return instance


@dataclass
class ApiContext:
    settings: Settings
    clock: Clock
    store: Store
    auth: AuthDirectory
    publisher: Publisher
    persons: PersonsView
    membership: MembershipView
    reports: ReportsView
    reader: CohortReader
    list_pages: ListPages
    activity: ActivityView
    file_system: FileSystemViews
    static_members: StaticMembers
    cohorts: CohortService
    cohort_persons: CohortPersons
    progress: Progress
    feeder: Feeder | None
    owns_publisher: bool

    @property
    def ready(self) -> bool:
        return self.feeder is None or self.feeder.ready

    def close(self) -> None:
        if self.feeder is not None:
            self.feeder.stop()
        if self.owns_publisher:
            self.publisher.close()
        self.auth.close()
        self.store.close()


def open_context(
    settings: Settings,
    *,
    clock: Clock | None = None,
    publisher: MemoryPublisher | None = None,
    consume: bool = True,
    metrics: ApiMetrics | None = None,
) -> ApiContext:
    """`publisher` (a `MemoryPublisher`) and `consume=False` are for unit tests: writes are folded
    straight into the views and no feeder runs."""
    clock = clock or system_clock
    data_dir = Path(settings.data_dir)
    store = Store(data_dir / "api")
    ensure_index(store)
    ensure_distinct_id_lists(store)
    auth = AuthDirectory(data_dir)
    topics = Topics(settings.topic_prefix, settings.partitions)
    folds = view_folds(topics, settings.partitions)
    progress = Progress(stored_positions(store, list(folds)))
    owns_publisher = publisher is None
    active: Publisher
    if publisher is None:
        active = KafkaPublisher(settings, progress, instance_id=_instance_id(store), metrics=metrics)
    else:
        publisher.attach(topics, store, folds)
        active = publisher
    persons = PersonsView(store)
    membership = MembershipView(store)
    reports = ReportsView(store)
    static_view = StaticMembersView(store)
    reader = CohortReader(store, auth, reports, membership, static_view)
    activity = ActivityLog(clock)
    static_members = StaticMembers(reader, persons, active, activity)
    cohorts = CohortService(settings, reader, active, activity, static_members, clock)
    feeder = None
    if consume:
        feeder = Feeder(
            settings,
            store,
            folds,
            active,
            progress,
            catch_up=(topics.catalog, topics.api_log),
            metrics=metrics,
        )
        feeder.start()
    if metrics is not None:
        metrics.watch_cohorts(reader.counts)
    return ApiContext(
        settings=settings,
        clock=clock,
        store=store,
        auth=auth,
        publisher=active,
        persons=persons,
        membership=membership,
        reports=reports,
        reader=reader,
        list_pages=ListPages(),
        activity=ActivityView(store),
        file_system=FileSystemViews(FileSystemView(store), active),
        static_members=static_members,
        cohorts=cohorts,
        cohort_persons=CohortPersons(reader, persons, MemberOrder(store), clock),
        progress=progress,
        feeder=feeder,
        owns_publisher=owns_publisher,
    )
