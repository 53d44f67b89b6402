"""Everything one api process holds open, wired once in the lifespan (never at import).

`open_context` opens the api's RocksDB (`data_dir/"api"`, read-write), the auth database
(`data_dir/"auth"`, read-only), the publisher and, unless told not to, the consumer that folds
the persons, membership and calculation-report topics into the views. `close` releases them in
reverse order, so a restart in the same process can reopen the same data dir.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.auth_db import AuthDirectory
from api.consumers import Feeder
from api.publisher import KafkaPublisher, Publisher
from api.services.activity import ActivityLog
from api.services.cohort_persons import CohortPersons
from api.services.cohorts import CohortService
from api.services.file_system import FileSystemViews
from api.services.static_members import StaticMembers
from api.store import Store
from api.views.cohorts import CohortReader
from api.views.membership import MembershipView, apply_change
from api.views.persons import PersonsView, apply_distinct_id, apply_person
from api.views.reports import ReportsView, apply_report
from api.views.static_members import StaticMembersView
from cohorts.settings import Settings
from cohorts.topics import Topics

__all__ = ["ApiContext", "Clock", "open_context", "system_clock"]

Clock = Callable[[], int]


def system_clock() -> int:
    """Wall clock in epoch microseconds."""
    return time.time_ns() // 1000


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
    activity: ActivityLog
    file_system: FileSystemViews
    static_members: StaticMembers
    cohorts: CohortService
    cohort_persons: CohortPersons
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
    publisher: Publisher | None = None,
    consume: bool = True,
) -> ApiContext:
    clock = clock or system_clock
    data_dir = Path(settings.data_dir)
    store = Store(data_dir / "api")
    auth = AuthDirectory(data_dir)
    owns_publisher = publisher is None
    if publisher is None:
        publisher = KafkaPublisher(settings)
    persons = PersonsView(store)
    membership = MembershipView(store)
    reports = ReportsView(store)
    static_view = StaticMembersView(store)
    reader = CohortReader(store, auth, reports, membership, static_view)
    activity = ActivityLog(store, clock)
    lock = threading.RLock()
    static_members = StaticMembers(store, reader, persons, publisher, activity, lock)
    cohorts = CohortService(settings, store, reader, publisher, activity, static_members, clock, lock)
    feeder = None
    if consume:
        topics = Topics(settings.topic_prefix, settings.partitions)
        partitions = settings.partitions
        feeder = Feeder(
            settings,
            store,
            {
                topics.persons: apply_person,
                topics.distinct_ids: apply_distinct_id,
                topics.membership_changed: apply_change,
                topics.calculation_reports: lambda batch, raw: apply_report(batch, raw, partitions),
            },
            publisher,
        )
        feeder.start()
    return ApiContext(
        settings=settings,
        clock=clock,
        store=store,
        auth=auth,
        publisher=publisher,
        persons=persons,
        membership=membership,
        reports=reports,
        reader=reader,
        activity=activity,
        file_system=FileSystemViews(store),
        static_members=static_members,
        cohorts=cohorts,
        cohort_persons=CohortPersons(reader, persons, clock),
        feeder=feeder,
        owns_publisher=owns_publisher,
    )
