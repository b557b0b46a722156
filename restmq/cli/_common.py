"""What the client commands share: --url/--token, exit codes, one-line errors, consoles.

Exit codes (docs/cli.md):

    0  success
    1  the server refused (an error answer), or an error in this program
    2  bad usage (click: unknown option, missing argument, ...)
    3  nothing to do: the queue is empty, or there was no input
    4  cannot connect: the server could not be reached or did not answer
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import IO, Any, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.progress import ProgressColumn, Task
from rich.text import Text

from restmq.client import Client, ClientError, Message, TransportError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_EMPTY = 3
EXIT_CONNECT = 4

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 server or program error, 2 bad usage, 3 empty queue / nothing to do, 4 cannot connect."
)

P = ParamSpec("P")
R = TypeVar("R")

stderr = Console(stderr=True, highlight=False)


class Failure(click.ClickException):
    """An error shown as one line on stderr, ``restmq: error: <message>`` (exit 1)."""

    exit_code = EXIT_ERROR

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"restmq: error: {self.format_message()}", file=file or sys.stderr)


class ConnectFailure(Failure):
    """The server could not be reached or did not answer (exit 4)."""

    exit_code = EXIT_CONNECT


class Nothing(Failure):
    """Nothing to do (exit 3): shown as ``restmq: <message>``."""

    exit_code = EXIT_EMPTY

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"restmq: {self.format_message()}", file=file or sys.stderr)


def failure(exc: ClientError, suffix: str = "") -> Failure:
    kind = ConnectFailure if isinstance(exc, TransportError) else Failure
    return kind(str(exc) + suffix)


def client_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn client errors into one-line failures with the documented exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            raise failure(exc) from exc
        except BrokenPipeError:  # `restmq tail q | head`: the reader went away
            sys.stderr.close()
            raise SystemExit(EXIT_OK) from None

    return wrapper


def connection_options(fn: Callable[P, R]) -> Callable[P, R]:
    """--url, --token and --timeout, read from RESTMQ_URL / RESTMQ_TOKEN / RESTMQ_TIMEOUT too."""
    fn = click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=30.0,
        show_default=True,
        envvar="RESTMQ_TIMEOUT",
        show_envvar=True,
        help="Seconds to wait for an answer (a long-poll adds its --wait).",
    )(fn)
    fn = click.option(
        "--token",
        envvar="RESTMQ_TOKEN",
        show_envvar=True,
        default=None,
        help="Bearer token, sent as 'Authorization: Bearer <token>'.",
    )(fn)
    fn = click.option(
        "--url",
        envvar="RESTMQ_URL",
        show_envvar=True,
        default="http://127.0.0.1:8888",
        show_default=True,
        help="RestMQ server base URL.",
    )(fn)
    return fn


def make_client(url: str, token: str | None, timeout: float) -> Client:
    logging.basicConfig(level=logging.WARNING, format="restmq: %(message)s", stream=sys.stderr)
    return Client(url, token=token, timeout=timeout)


def message_json(message: Message) -> str:
    return json.dumps({"key": message.key, "value": message.value, "count": message.count}, ensure_ascii=False)


def echo_message(message: Message, as_json: bool) -> None:
    click.echo(message_json(message) if as_json else message.value)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "-"


class RateColumn(ProgressColumn):
    """Items per second of a progress task (rich's own speed column is for bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")
