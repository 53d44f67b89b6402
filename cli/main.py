"""`cohorts`: the one command of the service. Each subcommand builds the settings once and passes them down.

cohorts up                      local Kafka (unless configured) + topics + one worker + one api
cohorts worker | api            one role each, for real deployments
cohorts kafka start|stop|status the local broker
cohorts topics create           every topic of design §3, verified
cohorts projects create         prints {"id": ...}
cohorts keys create             prints {"key": "phx_...", ...}
cohorts backfill | replay       re-read the events topic for state the worker does not hold
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import CliError, one_line_errors
from cli.local_kafka import LocalKafka
from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics

app = typer.Typer(help="Streaming cohort membership, PostHog-compatible.", no_args_is_help=True)
kafka_app = typer.Typer(help="The local single-node Kafka broker (not used when COHORTS_KAFKA_BOOTSTRAP is set).")
topics_app = typer.Typer(help="The service's Kafka topics.")
projects_app = typer.Typer(help="Projects (a project id is also the PostHog team_id of its events).")
keys_app = typer.Typer(help="Personal API keys.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")


def load_settings() -> Settings:
    """The one place the CLI reads the environment (through pydantic-settings)."""
    return Settings()


def local_kafka(settings: Settings) -> LocalKafka:
    return LocalKafka(Path(settings.data_dir) / "kafka", port=settings.local_kafka_port)


def topics_of(settings: Settings) -> Topics:
    return Topics(prefix=settings.topic_prefix, partitions=settings.partitions)


def _emit(payload: object) -> None:
    typer.echo(json.dumps(payload))


@app.command()
@one_line_errors
def up(
    demo: Annotated[bool, typer.Option("--demo", help="Also create demo cohorts and stream demo data.")] = False,
) -> None:
    """Run everything on this machine in the foreground: Kafka, topics, one worker, one api. Ctrl-C stops all."""
    from cli.supervisor import run_everything

    run_everything(load_settings(), demo=demo)


@app.command()
@one_line_errors
def demo(
    persons: Annotated[int, typer.Option(help="Population size.")] = 3_000,
    rate: Annotated[float, typer.Option(help="Events per second.")] = 50.0,
    duration: Annotated[float | None, typer.Option(help="Seconds to run; default until Ctrl-C.")] = None,
    project: Annotated[int | None, typer.Option(help="Project id; default: the one `cohorts up` made.")] = None,
    key: Annotated[str | None, typer.Option(help="API key; default: the one `cohorts up` made.")] = None,
) -> None:
    """Create demo cohorts through the api and stream realistic events and person updates into Kafka."""
    from cli.demo import create_demo_cohorts, stream_demo

    settings = load_settings()
    remembered = Path(settings.data_dir) / "up.json"
    if (project is None or key is None) and remembered.exists():
        credentials = json.loads(remembered.read_text())
        project = project if project is not None else credentials["project_id"]
        key = key or credentials["key"]
    if project is None or key is None:
        raise CliError("no project/key: pass --project and --key, or run `cohorts up` first")
    url = f"http://{settings.api_host}:{settings.api_port}"
    ids = create_demo_cohorts(url, project, key)
    typer.echo(f"demo cohorts: {ids}; streaming {rate:g} events/s over {persons} persons (Ctrl-C stops)")
    stream_demo(settings, project, persons=persons, rate_per_s=rate, duration_s=duration)


@app.command()
@one_line_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw status object.")] = False,
    flips: Annotated[int, typer.Option(help="How many recent flips to show.")] = 5,
) -> None:
    """Topics, worker lag, cohorts and the last flips, readable at a glance."""
    from cli.status import collect_status, render_status

    data = collect_status(load_settings(), flips=flips)
    typer.echo(json.dumps(data, default=str) if as_json else render_status(data))


@app.command()
@one_line_errors
def tail(
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Replay the topic first.")] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many changes.")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="Stop after this many idle seconds.")] = None,
) -> None:
    """Print cohort_membership_changed readably: one line per enter (+) or leave (-)."""
    from cli.tail import tail_changes

    tail_changes(load_settings(), from_beginning=from_beginning, limit=limit, idle_timeout_s=idle_timeout,
                 echo=typer.echo)  # fmt: skip


@app.command()
@one_line_errors
def worker() -> None:
    """Run one stream worker (joins the consumer group; run one per core)."""
    from stream.app import run_worker

    run_worker(load_settings())


@app.command()
@one_line_errors
def api() -> None:
    """Run the REST api on COHORTS_API_HOST:COHORTS_API_PORT."""
    from api.main import run_api

    run_api(load_settings())


@kafka_app.command("fetch")
@one_line_errors
def kafka_fetch() -> None:
    """Resolve the broker jars once from Maven Central into deploy/kafka/.cache (git-ignored)."""
    broker = local_kafka(load_settings())
    broker.fetch()
    _emit({"libs": str(broker.libs)})


@kafka_app.command("start")
@one_line_errors
def kafka_start() -> None:
    """Fetch the jars if needed, format storage, start the broker in the background and wait until it answers."""
    settings = load_settings()
    if not settings.uses_local_kafka:
        raise CliError("COHORTS_KAFKA_BOOTSTRAP is set: no local broker is started")
    broker = local_kafka(settings)
    broker.start()
    _emit({"bootstrap": broker.bootstrap, "pid": broker.pid(), "log": str(broker.log_file)})


@kafka_app.command("stop")
@one_line_errors
def kafka_stop() -> None:
    """Stop the local broker started from this data directory."""
    stopped = local_kafka(load_settings()).stop()
    _emit({"stopped": stopped})


@kafka_app.command("status")
@one_line_errors
def kafka_status() -> None:
    """Say whether the local broker runs; exit 1 when it does not."""
    broker = local_kafka(load_settings())
    pid = broker.pid()
    _emit({"running": pid is not None, "pid": pid, "bootstrap": broker.bootstrap})
    if pid is None:
        raise typer.Exit(1)


@topics_app.command("create")
@one_line_errors
def topics_create() -> None:
    """Create every topic with the configured partition count; fail loudly on a mismatch."""
    settings = load_settings()
    created = ensure_topics(settings.bootstrap, topics_of(settings).specs())
    _emit({"created": created, "partitions": settings.partitions})


@projects_app.command("create")
@one_line_errors
def projects_create(name: Annotated[str, typer.Option(help="Project name.")]) -> None:
    """Create a project; prints {"id": ...}. Works while an api runs on the same data directory."""
    from api.admin import AdminError, create_project

    try:
        _emit(create_project(load_settings(), name))
    except AdminError as exc:
        raise CliError(str(exc)) from exc


@keys_app.command("create")
@one_line_errors
def keys_create(
    project: Annotated[int, typer.Option(help="Project id the key is restricted to.")],
    user_email: Annotated[str, typer.Option(help="Owner; the user is created if new.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated, e.g. cohort:read,cohort:write or *.")] = "*",
) -> None:
    """Create a personal API key; prints {"key": "phx_...", ...}. Usable as soon as this returns."""
    from api.admin import AdminError, create_key

    scope_list = [scope.strip() for scope in scopes.split(",") if scope.strip()]
    try:
        _emit(create_key(load_settings(), project, user_email, scope_list))
    except AdminError as exc:
        raise CliError(str(exc)) from exc


_FROM_TIME = typer.Option(help="Re-read events from this time: ISO 8601 (2026-10-01T00:00:00Z) or relative (-30d).")
_FROM_OFFSET = typer.Option(help="Re-read every events partition from this offset instead.")
_WAIT = typer.Option(help="Seconds to wait for the worker to fold what was sent (0: do not wait).")


@app.command()
@one_line_errors
def backfill(
    cohort: Annotated[int, typer.Argument(help="Cohort id; the cohorts it refers to are backfilled too.")],
    from_time: Annotated[str | None, _FROM_TIME] = None,
    from_offset: Annotated[int | None, _FROM_OFFSET] = None,
    wait: Annotated[float, _WAIT] = 300.0,
) -> None:
    """Count past events a new cohort's conditions need: re-read clickhouse_events_json (default: all of it)."""
    _run_backfill(cohort_id=cohort, team_id=None, from_time=from_time, from_offset=from_offset, wait=wait)


@app.command()
@one_line_errors
def replay(
    project: Annotated[int, typer.Option(help="Project (team) id: every live cohort of it.")],
    from_time: Annotated[str | None, _FROM_TIME] = None,
    from_offset: Annotated[int | None, _FROM_OFFSET] = None,
    wait: Annotated[float, _WAIT] = 300.0,
) -> None:
    """Re-read clickhouse_events_json for every live cohort of a project; what was counted is not counted again."""
    _run_backfill(cohort_id=None, team_id=project, from_time=from_time, from_offset=from_offset, wait=wait)


def _run_backfill(
    *, cohort_id: int | None, team_id: int | None, from_time: str | None, from_offset: int | None, wait: float
) -> None:
    from confluent_kafka import KafkaException

    from cli.backfill import BackfillError, BackfillRequest, run_backfill
    from cli.progress import BarProgress
    from cohorts.dates import DateValueError, resolve_date
    from stream.clock import wall_clock_us

    if from_time is not None and from_offset is not None:
        raise CliError("give --from-time or --from-offset, not both")
    if from_offset is not None and from_offset < 0:
        raise CliError("--from-offset must be 0 or more")
    now_us = wall_clock_us()
    try:
        from_time_us = None if from_time is None else resolve_date(from_time, now_us)
    except DateValueError as exc:
        raise CliError(f"--from-time: {exc}") from exc
    request = BackfillRequest(
        cohort_id=cohort_id,
        team_id=team_id,
        from_time_us=from_time_us,
        from_offset=from_offset,
        wait_folded_s=wait if wait > 0 else None,
    )
    settings = load_settings()
    try:
        with BarProgress("re-reading events") as progress:
            summary = run_backfill(settings, request, now_us, progress)
    except BackfillError as exc:
        raise CliError(str(exc)) from exc
    except KafkaException as exc:
        raise CliError(f"cannot reach Kafka at {settings.bootstrap}: {exc.args[0].str()}") from exc
    except TimeoutError as exc:  # a bare one from a Kafka future says nothing by itself
        raise CliError(str(exc) or f"cannot reach Kafka at {settings.bootstrap}: no answer in time") from exc
    typer.echo(summary.line())
    if summary.folded is False:
        raise CliError(f"the worker did not fold the backfilled events within {wait:g} s (cohorts status)")


def main() -> None:
    app(prog_name="cohorts")
