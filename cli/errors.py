"""How the CLI fails: one clear line on stderr and a non-zero exit, never a traceback loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from cli.local_kafka import KafkaError
from infra.kafka_admin import TopicMismatchError

__all__ = ["CliError", "one_line_errors", "settings_error_line"]

P = ParamSpec("P")
R = TypeVar("R")


class CliError(RuntimeError):
    """A user-facing failure; its message is the whole story."""


def settings_error_line(exc: ValidationError) -> str:
    """Name the bad variable: `COHORTS_PARTITIONS: Input should be greater than or equal to 1`."""
    first = exc.errors()[0]
    variable = "COHORTS_" + "_".join(str(part) for part in first["loc"]).upper()
    return f"{variable}: {first['msg']}"


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the expected failures of a command into one line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            message = "invalid configuration: " + settings_error_line(exc)
        except (CliError, KafkaError, TopicMismatchError, ConnectionError, TimeoutError, OSError) as exc:
            message = str(exc)
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1)

    return wrapper
