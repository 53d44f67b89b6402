"""`configure_logging`: one stderr line per record, text or JSON, replacing earlier handlers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from infra.logs import configure_logging, logging_config


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """pytest's capture handlers live on the root logger: put them back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("uvicorn.access")
    access_handlers, access_propagate = access.handlers[:], access.propagate
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    access.handlers[:] = access_handlers
    access.propagate = access_propagate


def _last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_json_lines_carry_time_level_logger_message_and_extra_fields(capsys) -> None:
    configure_logging("json")
    logging.getLogger("cohorts.test").info("cohort %s saved", 7, extra={"cohort_id": 7, "team_id": 2})
    entry = json.loads(_last_line(capsys))
    assert entry["level"] == "INFO" and entry["logger"] == "cohorts.test"
    assert entry["message"] == "cohort 7 saved"
    assert entry["cohort_id"] == 7 and entry["team_id"] == 2
    assert entry["ts"].endswith("Z") and entry["ts"][10] == "T"
    assert "args" not in entry and "msg" not in entry


def test_json_includes_the_traceback_and_stringifies_odd_values(capsys) -> None:
    configure_logging("json")
    try:
        raise ValueError("bad input")
    except ValueError:
        logging.getLogger("cohorts.test").exception("failed", extra={"where": object()})
    entry = json.loads(_last_line(capsys).replace("\n", ""))
    assert entry["level"] == "ERROR"
    assert "ValueError: bad input" in entry["exc_info"]
    assert entry["where"].startswith("<object object")


def test_json_turns_uvicorn_access_lines_into_fields(capsys) -> None:
    configure_logging("json")
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET", "/api/projects/1/cohorts/", "1.1", 200)
    entry = json.loads(_last_line(capsys))
    assert entry["method"] == "GET" and entry["path"] == "/api/projects/1/cohorts/" and entry["status"] == 200


def test_text_format_is_one_readable_line(capsys) -> None:
    configure_logging("text")
    logging.getLogger("cohorts.test").warning("lag is %d", 12)
    line = _last_line(capsys)
    assert line.endswith(" WARNING cohorts.test: lag is 12")
    assert line[23] == "Z" and line[10] == "T"


def test_level_filters_and_reconfiguring_replaces_the_handler(capsys) -> None:
    configure_logging("text", level="warning")
    configure_logging("json", level="WARNING")
    logging.getLogger("cohorts.test").info("hidden")
    logging.getLogger("cohorts.test").error("shown")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["message"] == "shown"


def test_uvicorn_loggers_propagate_to_the_one_handler() -> None:
    """Scenario: uvicorn installs its own handlers; the config routes its loggers to root instead."""
    config = logging_config("json", "INFO")
    assert config["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": True}
    assert config["root"] == {"level": "INFO", "handlers": ["cohorts"]}


def test_unknown_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        configure_logging("yaml")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("text", level="loud")
