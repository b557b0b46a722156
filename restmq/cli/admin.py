"""`restmq policy`, `restmq control`, `restmq purge`, `restmq redrive`: queue settings and maintenance."""

from __future__ import annotations

import click

from restmq.cli._common import EXIT_CODES_HELP, Nothing, client_errors, connection_options, make_client
from restmq.core.names import MAX_DELIVERIES


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@click.argument("value", required=False, type=click.Choice(["broadcast", "roundrobin"]))
@connection_options
@client_errors
def policy(queue: str, value: str | None, url: str, token: str | None, timeout: float) -> None:
    """Show or set the streaming policy of QUEUE.

    broadcast (the default) gives each streamed message to every streaming consumer; roundrobin
    gives it to exactly one, rotating. Plain GETs are not affected.

    \b
    restmq policy jobs                  prints: jobs roundrobin
    restmq policy jobs roundrobin
    """
    with make_client(url, token, timeout) as client:
        current = client.set_policy(queue, value) if value else client.policy(queue)
    click.echo(f"{queue} {current}")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@click.argument("status", required=False, type=click.Choice(["start", "stop"]))
@click.option(
    "--max-deliveries",
    type=click.IntRange(0, MAX_DELIVERIES),
    help="Deliveries without an ack before a message moves to <queue>:dead (0 = unlimited).",
)
@connection_options
@client_errors
def control(
    queue: str, status: str | None, max_deliveries: int | None, url: str, token: str | None, timeout: float
) -> None:
    """Show or set the flow control of QUEUE.

    stop pauses delivery to every consumer (GETs answer empty, streams wait); producers keep adding.
    start resumes with the backlog.

    \b
    restmq control jobs                         prints: jobs start max_deliveries=0
    restmq control jobs stop
    restmq control jobs --max-deliveries 5
    """
    with make_client(url, token, timeout) as client:
        if status is None and max_deliveries is None:
            current = client.control(queue)
        else:
            current = client.set_control(queue, status=status, max_deliveries=max_deliveries)
    click.echo(f"{queue} {current.status} max_deliveries={current.max_deliveries}")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@connection_options
@client_errors
def purge(queue: str, yes: bool, url: str, token: str | None, timeout: float) -> None:
    """Remove every message of QUEUE (ready, delayed and leased) and close its streams.

    Settings (policy, flow control, max_deliveries) stay. Asks first unless --yes.
    """
    if not yes:
        click.confirm(f"Remove every message of queue {queue}?", abort=True, err=True)
    with make_client(url, token, timeout) as client:
        removed = client.purge(queue)
    click.echo(f"removed {removed} messages from {queue}")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@connection_options
@client_errors
def redrive(queue: str, url: str, token: str | None, timeout: float) -> None:
    """Move the dead letters of QUEUE (QUEUE:dead) back to QUEUE as new messages. Exits 3 when there were none."""
    with make_client(url, token, timeout) as client:
        moved = client.redrive(queue)
    if not moved:
        raise Nothing(f"no dead letters in {queue.removesuffix(':dead')}:dead")
    click.echo(f"moved {moved} messages back to {queue.removesuffix(':dead')}")
