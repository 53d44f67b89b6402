"""File-system "recently viewed" log (design §8, reference §4): writing and reading views.

Every retrieve of a cohort logs a view for the calling user (a departure from PostHog, design
§8), and clients can log and read views through `file_system/log_view/`. A view is a record on
the api log (`api.api_log.ViewRecord`), so every api process shows it.

- `POST file_system/log_view/` returns once this process applied the view.
- A retrieve queues its view and answers without waiting for Kafka (a read must not cost a
  round trip through the broker and the feeder: about 200 ms before). Reading the views
  (`recent`) first settles this process's queued views, for at most `RETRIEVE_VIEW_WAIT_S`, so
  a client still sees its own retrieves there at once. Another api process shows them once its
  feeder applied them, as any api-log record.
- A retrieve still answers if its view cannot be logged: the view is lost (logged as a
  warning), the cohort is not.
"""

from __future__ import annotations

import logging
from typing import Any

from api.api_log import ViewRecord
from api.errors import kafka_errors
from api.publisher import Publisher, PublishError
from api.views.file_system import FileSystemView

__all__ = ["RETRIEVE_VIEW_WAIT_S", "FileSystemViews"]

log = logging.getLogger(__name__)

#: How long reading the views waits for this process's queued retrieve views to be applied.
RETRIEVE_VIEW_WAIT_S = 2.0


class FileSystemViews:
    def __init__(self, view: FileSystemView, publisher: Publisher) -> None:
        self._view = view
        self._publisher = publisher

    def log(self, team_id: int, user_id: int, type_: str, ref: str, viewed_at_us: int) -> None:
        with kafka_errors():
            self._publisher.log(ViewRecord(team_id, user_id, type_, ref, viewed_at_us))

    def log_retrieve(self, team_id: int, user_id: int, type_: str, ref: str, viewed_at_us: int) -> None:
        """Queue the view a retrieve implies, without waiting for it; a failure is logged, never answered."""
        try:
            self._publisher.log(ViewRecord(team_id, user_id, type_, ref, viewed_at_us), wait=False)
        except PublishError as exc:
            log.warning("could not log a view of %s %s: %s", type_, ref, exc)

    def recent(self, team_id: int, user_id: int, type_: str | None, limit: int | None) -> list[dict[str, Any]]:
        """The views, after this process's queued ones were applied (or `RETRIEVE_VIEW_WAIT_S` passed)."""
        if not self._publisher.settle(RETRIEVE_VIEW_WAIT_S):
            log.warning("retrieve views not applied within %ss; serving without them", RETRIEVE_VIEW_WAIT_S)
        return self._view.recent(team_id, user_id, type_, limit)
