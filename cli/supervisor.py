"""`cohorts up`: the embedded default, supervised in the foreground (design §2).

Order of start-up:
1. refuse early when the api port is taken (one clear line, nothing started);
2. start the local broker unless `COHORTS_KAFKA_BOOTSTRAP` names a cluster;
3. create or verify the topics;
4. make sure a project and a ready API key exist (remembered in `<data_dir>/up.json`);
5. start one worker and one api as child processes pointed at that broker;
6. wait until the api answers, print its URL and the key;
7. with `--demo`, start `cohorts demo` as a third child.
Ctrl-C (or SIGTERM) stops the children, then the broker this command started: nothing is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer

from cli.errors import CliError
from cli.local_kafka import LocalKafka, _port_taken
from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics

__all__ = ["run_everything"]

_STOP_GRACE_S = 20.0


class _Stop(Exception):
    """Raised from the signal handler to unwind into the cleanup path."""


def run_everything(settings: Settings, *, demo: bool = False) -> None:
    if _port_taken(settings.api_port):
        raise CliError(f"port {settings.api_port} on {settings.api_host} is in use; set COHORTS_API_PORT")
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    broker: LocalKafka | None = None
    children: list[subprocess.Popen] = []
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        bootstrap = settings.bootstrap
        if settings.uses_local_kafka:
            broker = LocalKafka(data_dir / "kafka", port=settings.local_kafka_port)
            if broker.pid() is not None:
                broker = None  # someone else's broker (`cohorts kafka start`): use it, leave it running
            else:
                typer.echo(f"starting Kafka on {bootstrap} ...", err=True)
                broker.start()
        ensure_topics(bootstrap, Topics(settings.topic_prefix, settings.partitions).specs())
        credentials = _ensure_credentials(settings, data_dir)
        env = {**os.environ, "COHORTS_KAFKA_BOOTSTRAP": bootstrap, "COHORTS_DATA_DIR": str(data_dir)}
        for role in ("worker", "api"):
            children.append(subprocess.Popen([sys.executable, "-m", "cli", role], env=env, stdin=subprocess.DEVNULL))
        url = f"http://{settings.api_host}:{settings.api_port}"
        _wait_for_api(url, children)
        typer.echo(f"api:     {url}/api/projects/{credentials['project_id']}/cohorts/")
        typer.echo(f"api key: {credentials['key']}")
        typer.echo("Ctrl-C stops everything.")
        if demo:
            children.append(subprocess.Popen([sys.executable, "-m", "cli", "demo"], env=env, stdin=subprocess.DEVNULL))
        while True:
            for child in children:
                if child.poll() is not None:
                    raise CliError(f"a child process ({' '.join(child.args[-1:])}) exited with {child.returncode}")
            time.sleep(0.5)
    except _Stop:
        typer.echo("stopping ...", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_children(children)
        if broker is not None:
            broker.stop()


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def _ensure_credentials(settings: Settings, data_dir: Path) -> dict:
    """A project and a `*` key for the person at the keyboard, created once per data directory."""
    from api.admin import create_key, create_project

    remembered = data_dir / "up.json"
    if remembered.exists():
        return json.loads(remembered.read_text())
    project = create_project(settings, "Default project")
    key = create_key(settings, project["id"], "admin@localhost", ["*"])
    credentials = {"project_id": project["id"], "key": key["key"]}
    remembered.write_text(json.dumps(credentials))
    remembered.chmod(0o600)
    return credentials


def _wait_for_api(url: str, children: list[subprocess.Popen], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in children:
            if child.poll() is not None:
                raise CliError(f"{child.args[-1]} exited with {child.returncode} during start-up")
        try:
            if httpx.get(f"{url}/_health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise CliError(f"the api did not answer on {url} within {timeout_s:.0f}s")


def _stop_children(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
