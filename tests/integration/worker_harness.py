"""Run a real worker as a subprocess (`python -m stream`) and talk to it through the broker.

faust inside the pytest process is fragile (event loops, signal handlers, globals), so
integration and differential tests start the worker as its own process, configured by
`COHORTS_*` variables, and observe it only through Kafka topics and its metrics port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from cli.local_kafka import free_port
from cohorts.settings import Settings

__all__ = ["TopicReader", "WorkerProcess", "produce", "start_worker"]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int
    clock_file: Path | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def set_now(self, now_us: int) -> None:
        """Move the worker's injected clock (only when started with a clock file)."""
        assert self.clock_file is not None, "worker was started without an injected clock"
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(str(now_us))
        tmp.replace(self.clock_file)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if "Worker ready" in self.log() or "[^Worker]: Ready" in self.log():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout_s}s:\n{self.log()[-4000:]}")

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_worker(
    settings: Settings,
    log_dir: Path,
    *,
    now_us: int | None = None,
    tick_interval_s: float | None = None,
    extra_env: dict[str, str] | None = None,
) -> WorkerProcess:
    """Start `python -m stream` for `settings`; `now_us` injects a clock the test moves with set_now."""
    web_port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "COHORTS_KAFKA_BOOTSTRAP": settings.bootstrap,
            "COHORTS_TOPIC_PREFIX": settings.topic_prefix,
            "COHORTS_PARTITIONS": str(settings.partitions),
            "COHORTS_DATA_DIR": str(settings.data_dir),
            "COHORTS_WORKER_WEB_PORT": str(web_port),
        }
    )
    args = [sys.executable, "-m", "stream"]
    clock_file = None
    if now_us is not None:
        clock_file = log_dir / "clock_us"
        clock_file.write_text(str(now_us))
        args += ["--clock-file", str(clock_file)]
    if tick_interval_s is not None:
        args += ["--tick-interval", str(tick_interval_s)]
    env.update(extra_env or {})
    log_path = log_dir / f"worker-{web_port}.log"
    log_file = log_path.open("wb")
    try:
        process = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    finally:
        log_file.close()
    worker = WorkerProcess(process, log_path, web_port, clock_file)
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | str | None, Any]], **kw: Any) -> None:
    """Produce (key, value) pairs; dict values are JSON-encoded, bytes are sent as they are."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value in messages:
        if isinstance(value, dict | list):
            value = orjson.dumps(value)
        producer.produce(topic, key=key, value=value, **kw)
    assert producer.flush(30) == 0


@dataclass
class TopicReader:
    """Reads a topic from the beginning, accumulating every message (all partitions, no group commit)."""

    bootstrap: str
    topic: str
    messages: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    _consumer: Consumer | None = None

    def __post_init__(self) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{self.topic}-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        metadata = self._consumer.list_topics(self.topic, timeout=10)
        parts = metadata.topics[self.topic].partitions
        self._consumer.assign([TopicPartition(self.topic, p, 0) for p in parts])

    def poll(self, timeout_s: float = 0.5) -> int:
        assert self._consumer is not None
        got = 0
        for msg in self._consumer.consume(num_messages=10_000, timeout=timeout_s):
            if msg.error():
                continue
            self.messages.append((msg.key(), msg.value()))
            got += 1
        return got

    def wait_for(
        self, predicate: Callable[[list[tuple[bytes | None, bytes | None]]], bool], timeout_s: float = 30.0
    ) -> list[tuple[bytes | None, bytes | None]]:
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll(0.3)
            if predicate(self.messages):
                return self.messages
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out on {self.topic}; have {len(self.messages)} messages")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
