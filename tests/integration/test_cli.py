"""The `cohorts` command as a user runs it: help everywhere, one clear line on bad configuration."""

from __future__ import annotations

import socket

import pytest

from cli.local_kafka import free_port
from tests.cli_process import cohorts, env_for

COMMANDS = [
    [],
    ["up"],
    ["demo"],
    ["tail"],
    ["status"],
    ["backfill"],
    ["replay"],
    ["worker"],
    ["api"],
    ["kafka"],
    ["kafka", "fetch"],
    ["kafka", "start"],
    ["kafka", "stop"],
    ["kafka", "status"],
    ["topics", "create"],
    ["projects", "create"],
    ["keys", "create"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cohorts")
def test_every_command_has_help(command: list[str], tmp_path) -> None:
    result = cohorts(*command, "--help", env=env_for(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Usage: cohorts" in result.stdout


def _assert_one_line_error(result, fragment: str) -> None:
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_an_invalid_setting_names_the_variable(tmp_path) -> None:
    result = cohorts("topics", "create", env=env_for(tmp_path, partitions=0))
    _assert_one_line_error(result, "COHORTS_PARTITIONS")


def test_an_unreachable_broker_is_one_error_line(tmp_path) -> None:
    result = cohorts("topics", "create", env=env_for(tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}"))
    _assert_one_line_error(result, "cannot reach Kafka")


@pytest.mark.parametrize("command", [("backfill", "3"), ("replay", "--project", "1")], ids=lambda c: c[0])
def test_backfill_and_replay_with_an_unreachable_broker_are_one_error_line(tmp_path, command) -> None:
    result = cohorts(*command, env=env_for(tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}"))
    _assert_one_line_error(result, "cannot reach Kafka")


def test_up_with_an_unreachable_broker_is_one_error_line(tmp_path) -> None:
    env = env_for(tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}", api_port=free_port())
    result = cohorts("up", env=env)
    _assert_one_line_error(result, "cannot reach Kafka")


def test_up_on_an_occupied_api_port_is_one_error_line_and_starts_nothing(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cohorts("up", env=env_for(tmp_path, api_port=port, local_kafka_port=free_port()))
    _assert_one_line_error(result, f"port {port}")
    assert not (tmp_path / "kafka").exists()


@pytest.mark.kafka
def test_topics_create_refuses_a_partition_mismatch(kafka_bootstrap, make_topics, tmp_path) -> None:
    topics = make_topics(partitions=2)
    env = env_for(tmp_path, kafka_bootstrap=kafka_bootstrap, topic_prefix=topics.prefix, partitions=3)
    result = cohorts("topics", "create", env=env)
    _assert_one_line_error(result, "partition count mismatch")


@pytest.mark.kafka
def test_topics_create_twice_creates_then_verifies(kafka_bootstrap, tmp_path) -> None:
    env = env_for(tmp_path, kafka_bootstrap=kafka_bootstrap, topic_prefix=f"cli{free_port()}_", partitions=2)
    first = cohorts("topics", "create", env=env)
    second = cohorts("topics", "create", env=env)
    assert first.returncode == 0, first.stderr
    assert '"created": ["' in first.stdout
    assert second.returncode == 0
    assert '"created": []' in second.stdout


def test_kafka_status_without_a_broker_exits_non_zero(tmp_path) -> None:
    result = cohorts("kafka", "status", env=env_for(tmp_path))
    assert result.returncode == 1
    assert '"running": false' in result.stdout


def test_local_broker_start_status_stop(tmp_path) -> None:
    """Scenario: `kafka start` runs a broker in the background; `status` sees it; `stop` leaves nothing."""
    env = env_for(tmp_path, local_kafka_port=free_port())
    started = cohorts("kafka", "start", env=env)
    assert started.returncode == 0, started.stderr
    try:
        status = cohorts("kafka", "status", env=env)
        assert status.returncode == 0
        assert '"running": true' in status.stdout
    finally:
        stopped = cohorts("kafka", "stop", env=env)
    assert '"stopped": true' in stopped.stdout
    assert cohorts("kafka", "status", env=env).returncode == 1
