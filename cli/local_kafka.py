"""A local single-node Apache Kafka (KRaft, broker + controller) for development, tests and `cohorts up`.

Owns: resolving the broker jars once from Maven Central into `deploy/kafka/.cache/libs` (git-ignored,
driven by `deploy/kafka/pom.xml`), formatting KRaft storage, starting the JVM bound to 127.0.0.1 only,
waiting until it answers metadata requests, and stopping it. Single-node settings allow transactions
and internal topics (replication factor 1, min ISR 1); topics are never auto-created, so a topic with
the wrong partition count cannot appear by accident.

Never used when `COHORTS_KAFKA_BOOTSTRAP` names an existing cluster (the caller checks).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KafkaError", "LocalKafka", "free_port", "project_root"]


class KafkaError(RuntimeError):
    """The local broker could not be fetched, started or reached; the message is one clear line."""


def project_root() -> Path:
    """The repository checkout this package runs from (the install is editable)."""
    return Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=-1
log.retention.bytes=-1
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=16777216
num.network.threads=2
num.io.threads=4
"""

_LOG4J = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
"""


@dataclass
class LocalKafka:
    """One broker whose whole state (config, data, logs, pid) lives under `home`."""

    home: Path
    port: int = 9092
    controller_port: int | None = None
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def libs(self) -> Path:
        return project_root() / "deploy" / "kafka" / ".cache" / "libs"

    @property
    def _pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    # -- jars -------------------------------------------------------------------------------------

    def fetch(self) -> None:
        """Resolve the broker jars once (Maven); later calls are free."""
        if self.libs.is_dir() and any(self.libs.glob("kafka_2.13-*.jar")):
            return
        pom = project_root() / "deploy" / "kafka" / "pom.xml"
        command = [
            "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime",
        ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        except FileNotFoundError as exc:
            raise KafkaError("Maven (mvn) is not installed; it is needed once to fetch the Kafka jars") from exc
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise KafkaError("could not fetch the Kafka jars with Maven: " + " | ".join(tail))

    # -- lifecycle --------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of a broker started from `home` that is still alive, else None."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self, *, wait_s: float = 90.0) -> None:
        """Format storage on first use, start the broker in the background, wait until it answers."""
        if self.pid() is not None:
            self.wait_ready(wait_s)
            return
        self.fetch()
        if self.controller_port is None:
            self.controller_port = free_port()
        for port in (self.port, self.controller_port):
            if _port_taken(port):
                raise KafkaError(f"port {port} on 127.0.0.1 is already in use; set COHORTS_LOCAL_KAFKA_PORT")
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        log_dir = self.home / "data"
        if not (log_dir / "meta.properties").exists():
            self._java("kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config),
                       "--ignore-formatted", timeout=120)  # fmt: skip
        with open(self.home / "broker.out", "ab") as out:
            process = subprocess.Popen(
                self._java_command("kafka.Kafka", str(config)),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pid_file.write_text(str(process.pid))
        try:
            self.wait_ready(wait_s, process=process)
        except KafkaError:
            self.stop()
            raise

    def wait_ready(self, wait_s: float, process: subprocess.Popen | None = None) -> None:
        """Poll a metadata request until the broker answers, it dies, or `wait_s` passes."""
        from infra.kafka_admin import admin_client

        deadline = time.monotonic() + wait_s
        admin = admin_client(self.bootstrap)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise KafkaError(f"the local broker exited with {process.returncode}; see {self.log_file}")
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise KafkaError(f"the local broker did not answer on {self.bootstrap} within {wait_s:.0f}s")

    def stop(self, *, wait_s: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after `wait_s`; True if a broker was running."""
        pid = self.pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self._pid_file.unlink(missing_ok=True)
        return True

    # -- internals --------------------------------------------------------------------------------

    def _write_config(self) -> Path:
        config = self.home / "server.properties"
        config.write_text(
            _PROPERTIES.format(port=self.port, controller_port=self.controller_port, log_dir=self.home / "data")
        )
        (self.home / "log4j2.properties").write_text(_LOG4J.format(log_file=self.log_file))
        return config

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    def _java(self, main_class: str, *args: str, timeout: float) -> None:
        try:
            result = subprocess.run(
                self._java_command(main_class, *args), capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError as exc:
            raise KafkaError("java is not installed; Kafka 4 needs Java 17 or newer") from exc
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-2:]
            raise KafkaError(f"{main_class} failed: " + " | ".join(tail))


def _cluster_id() -> str:
    """A KRaft cluster id; never one starting with '-', which kafka-storage would read as an option."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == 0


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
