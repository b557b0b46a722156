"""`restmq tail`: print a queue's messages as they arrive (Server-Sent Events, reconnecting)."""

from __future__ import annotations

import click

from restmq.cli._common import EXIT_CODES_HELP, client_errors, connection_options, echo_message, make_client


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@click.option("--json", "as_json", is_flag=True, help='One JSON object per line: {"key","value","count"}.')
@click.option(
    "--lease",
    type=click.FloatRange(min=0, min_open=True),
    help="Lease mode (roundrobin queues): each message is acked once printed.",
)
@click.option("--last-event-id", help="Resume after this message key: replays what was broadcast since.")
@click.option("-n", "--count", type=click.IntRange(min=1), help="Exit after this many messages.")
@connection_options
@client_errors
def tail(
    queue: str,
    as_json: bool,
    lease: float | None,
    last_event_id: str | None,
    count: int | None,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    """Print the messages of QUEUE as they arrive, until Ctrl-C (or --count messages).

    tail is a streaming consumer: on a broadcast queue (the default) it receives every message
    taken for streaming, as every other streaming consumer does; on a roundrobin queue it shares
    them with the others. It reconnects by itself when the connection drops, resuming after the
    last message it printed.

    \b
    restmq tail news                    values, one per line
    restmq tail news --json | jq .      {"key","value","count"} per line
    """
    printed = 0
    with make_client(url, token, timeout) as client:
        client.health()  # an unreachable server exits 4 here; once streaming, tail reconnects by itself
        try:
            with client.stream(queue, lease=lease, last_event_id=last_event_id) as stream:
                for message in stream:
                    echo_message(message, as_json)
                    printed += 1
                    if count is not None and printed >= count:
                        break
        except KeyboardInterrupt:
            pass
