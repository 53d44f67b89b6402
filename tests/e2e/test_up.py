"""`cohorts up`, the embedded default, as a newcomer runs it (foundation acceptance).

Scenario: with no `COHORTS_KAFKA_BOOTSTRAP`, `cohorts up` starts its own broker, a worker and an api,
prints the API URL and a key; the key lists cohorts; Ctrl-C (SIGINT) stops every process it started.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from cli.local_kafka import free_port
from tests.cli_process import alive, descendants, env_for

pytestmark = pytest.mark.kafka


def _read_until_key(process: subprocess.Popen[str], timeout_s: float) -> tuple[str, str]:
    deadline = time.monotonic() + timeout_s
    url = key = None
    lines: list[str] = []
    while time.monotonic() < deadline and key is None:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line)
        if match := re.match(r"api:\s+(\S+)", line):
            url = match.group(1)
        if match := re.match(r"api key:\s+(phx_\S+)", line):
            key = match.group(1)
    assert url and key, f"cohorts up printed no url/key: {lines}"
    return url, key


def test_up_serves_cohorts_with_the_printed_key_and_ctrl_c_leaves_nothing_behind(tmp_path) -> None:
    env = env_for(
        tmp_path / "data",
        local_kafka_port=free_port(),
        api_port=free_port(),
        worker_web_port=free_port(),
        partitions=2,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "up"], env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        url, key = _read_until_key(process, timeout_s=180)
        started = descendants(process.pid)
        assert len(started) >= 3, "broker, worker and api run below `cohorts up`"

        response = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == 0
        assert body["results"] == []
        assert httpx.get(url, timeout=10).status_code == 401

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=90) == 0
        time.sleep(0.5)
        assert [pid for pid in started if alive(pid)] == []
        assert not (tmp_path / "data" / "kafka" / "broker.pid").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
