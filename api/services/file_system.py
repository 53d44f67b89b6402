"""File-system "recently viewed" log (design §8, reference §4): writing and reading views.

Every retrieve of a cohort logs a view for the calling user (a departure from PostHog, design
§8), and clients can log and read views through `file_system/log_view/`. A view is a record on
the api log (`api.api_log.ViewRecord`), so every api process shows it; the call returns once this
process applied it. A retrieve still answers if its view cannot be logged: the view is lost, the
cohort is not.
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

#: How long a retrieve waits for Kafka to take, and this process to apply, the view it logs.
RETRIEVE_VIEW_WAIT_S = 2.0


class FileSystemViews:
    def __init__(self, view: FileSystemView, publisher: Publisher) -> None:
        self._view = view
        self._publisher = publisher

    def log(self, team_id: int, user_id: int, type_: str, ref: str, viewed_at_us: int) -> None:
        with kafka_errors():
            self._publisher.log(ViewRecord(team_id, user_id, type_, ref, viewed_at_us))

    def log_retrieve(self, team_id: int, user_id: int, type_: str, ref: str, viewed_at_us: int) -> None:
        """Log the view a retrieve implies; a failure is logged, never answered, and a read waits
        at most `RETRIEVE_VIEW_WAIT_S` for it."""
        try:
            self._publisher.log(ViewRecord(team_id, user_id, type_, ref, viewed_at_us), timeout_s=RETRIEVE_VIEW_WAIT_S)
        except PublishError as exc:
            log.warning("could not log a view of %s %s: %s", type_, ref, exc)

    def recent(self, team_id: int, user_id: int, type_: str | None, limit: int | None) -> list[dict[str, Any]]:
        return self._view.recent(team_id, user_id, type_, limit)
