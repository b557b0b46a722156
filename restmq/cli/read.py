"""`restmq get`, `restmq take`, `restmq ack`, `restmq release`: read messages and settle leases."""

from __future__ import annotations

import click

from restmq.cli._common import EXIT_CODES_HELP, Nothing, client_errors, connection_options, echo_message, make_client
from restmq.client import Message


def _read_options(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.option("--json", "as_json", is_flag=True, help='One JSON object per line: {"key","value","count"}.')(fn)
    fn = click.option(
        "--lease",
        type=click.FloatRange(min=0, min_open=True),
        help="Lease the messages for this many seconds instead of removing them; settle with `restmq ack KEY`.",
    )(fn)
    fn = click.option(
        "-n", "--count", type=click.IntRange(1, 1000), help="Read up to this many messages (one per line)."
    )(fn)
    fn = click.option(
        "-w",
        "--wait",
        type=click.FloatRange(0, 60),
        default=0.0,
        help="Long-poll: wait up to this many seconds for a message.",
    )(fn)
    return fn


def _read(
    queue: str,
    wait: float,
    count: int | None,
    lease: float | None,
    as_json: bool,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    with make_client(url, token, timeout) as client:
        messages: list[Message] = client.get(queue, count=count or 1, wait=wait, lease=lease)
    if not messages:
        raise Nothing(f"queue {queue} is empty")
    for message in messages:
        echo_message(message, as_json)
        if lease is not None and not as_json:
            click.echo(
                f"leased {message.key} (delivery {message.count}) for {lease:g} s: "
                f"`restmq ack {message.key}` when done",
                err=True,
            )


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@_read_options
@click.option(
    "--soft",
    is_flag=True,
    help="The original soft get: the message stays at the head of the queue and its count goes up.",
)
@connection_options
@client_errors
def get(
    queue: str,
    wait: float,
    count: int | None,
    lease: float | None,
    as_json: bool,
    soft: bool,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    """Read the oldest message(s) of QUEUE and print their values.

    The messages are removed as they are read (the original RestMQ GET), unless --lease keeps them
    hidden until acked, or --soft leaves them queued. An empty queue exits with code 3.

    \b
    restmq get jobs                     the oldest message's value
    restmq get jobs --wait 10 --json    wait up to 10 s; {"key","value","count"}
    restmq get jobs -n 100              up to 100 messages, one per line
    restmq get jobs --lease 30          lease it: then `restmq ack jobs:1`
    """
    if soft:
        if count is not None or lease is not None or wait:
            raise click.UsageError("--soft takes no --count, --lease or --wait")
        with make_client(url, token, timeout) as client:
            message = client.soft_get(queue)
        if message is None:
            raise Nothing(f"queue {queue} is empty")
        echo_message(message, as_json)
        return
    _read(queue, wait, count, lease, as_json, url, token, timeout)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@_read_options
@connection_options
@client_errors
def take(
    queue: str,
    wait: float,
    count: int | None,
    lease: float | None,
    as_json: bool,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    """Take the oldest message(s) of QUEUE and print their values (like `get`, without --soft).

    \b
    restmq take jobs --wait 5           wait up to 5 s for a message
    restmq take jobs -n 10 --json       up to 10 messages as JSON lines
    """
    _read(queue, wait, count, lease, as_json, url, token, timeout)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("key")
@click.option("--count", type=click.IntRange(min=1), help="The delivery's count: refuse if it was redelivered since.")
@connection_options
@client_errors
def ack(key: str, count: int | None, url: str, token: str | None, timeout: float) -> None:
    """Acknowledge the leased message KEY (<queue>:<n>): it is done and removed."""
    with make_client(url, token, timeout) as client:
        delivered = client.ack(key, count=count)
    click.echo(f"acked {key} (delivery {delivered})")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("key")
@click.option("--delay", type=click.FloatRange(min=0), default=0.0, help="Seconds before it is visible again.")
@click.option("--count", type=click.IntRange(min=1), help="The delivery's count: refuse if it was redelivered since.")
@connection_options
@client_errors
def release(key: str, delay: float, count: int | None, url: str, token: str | None, timeout: float) -> None:
    """Give the leased message KEY back to its queue (at the head, or after --delay seconds)."""
    with make_client(url, token, timeout) as client:
        delivered = client.release(key, count=count, delay=delay)
    click.echo(f"released {key} (delivery {delivered})")
