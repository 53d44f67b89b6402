"""How every process logs: one line per record on stderr, human text or JSON (`COHORTS_LOG_FORMAT`).

Text is for a terminal; JSON is for a log pipeline (Loki, Elasticsearch, CloudWatch), one object per
line with `ts` (UTC, ISO-8601), `level`, `logger`, `message`, any `extra={...}` fields, and
`exc_info` when an exception is attached. Both come from one `logging.config.dictConfig` dict, so
the same configuration can be handed to faust (`faust.Worker(..., logging_config=...)`, which
otherwise replaces the root handlers with its own) and to uvicorn (`log_config=...`).

Never: log person data here or add handlers at import; only `configure_logging` touches logging.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any, Final

__all__ = ["LOG_FORMATS", "JsonFormatter", "TextFormatter", "configure_logging", "logging_config"]

LOG_FORMATS: Final = ("text", "json")

#: Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's ANSI copy of the message
)

#: Loggers that install their own handlers unless told otherwise; routed to the root handler instead.
_ROUTED_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _utc_iso(created_s: float) -> str:
    """`2025-01-01T10:00:00.123Z`: UTC with milliseconds, the same in both formats."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created_s)) + f".{int(created_s % 1 * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """`2025-01-01T10:00:00.123Z INFO    cohorts.api: message`, UTC whatever the host's zone."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; values that JSON cannot hold are written as their `str()`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and k not in entry)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            # uvicorn's access line '%s - "%s %s HTTP/%s" %d' as fields a log query can filter on.
            client, method, path, _http_version, status = record.args
            entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _level_name(level: str | int) -> str:
    if isinstance(level, int):
        return logging.getLevelName(level)
    name = level.upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {level!r}")
    return name


def logging_config(log_format: str, level: str | int = "INFO") -> dict[str, Any]:
    """The `dictConfig` dict for `log_format` ("text" | "json"): one stderr handler on the root logger."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    level_name = _level_name(level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"cohorts": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "cohorts": {"class": "logging.StreamHandler", "formatter": "cohorts", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level_name, "handlers": ["cohorts"]},
        # Drop the handlers these libraries configure for themselves, so each record is written once.
        "loggers": {name: {"handlers": [], "propagate": True} for name in _ROUTED_LOGGERS},
    }


def configure_logging(log_format: str, level: str | int = "INFO") -> None:
    """Install the handler for `log_format` on the root logger; calling it again replaces it."""
    logging.config.dictConfig(logging_config(log_format, level))
