"""`restmq push add|list|remove`: push subscriptions (docs/push.md), through the HTTP API."""

from __future__ import annotations

import json
from typing import Any

import click

from restmq.cli._common import EXIT_CODES_HELP, client_errors, connection_options, make_client


@click.group()
def push() -> None:
    """Push subscriptions: a queue's messages POSTed to a webhook (the server needs --push-allow)."""


@push.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@click.argument("target")
@click.option("--secret", envvar="RESTMQ_PUSH_SECRET", help="Signing secret, whsec_<base64> (or RESTMQ_PUSH_SECRET).")
@click.option("--delivery-timeout", "push_timeout", type=float, help="Seconds per delivery (10).")
@click.option("--max-in-flight", type=int, help="Deliveries at once over all server processes (10).")
@click.option("--rate", type=float, help="Deliveries per second over all server processes (0: no limit).")
@click.option("--max-attempts", type=int, help="Deliveries of a message before it moves to QUEUE:dead (10).")
@click.option("--backoff-base", type=float, help="Seconds: the first retry waits up to this (1).")
@click.option("--backoff-cap", type=float, help="Seconds: no retry waits longer (300).")
@connection_options
@client_errors
def add(
    queue: str,
    target: str,
    secret: str | None,
    push_timeout: float | None,
    max_in_flight: int | None,
    rate: float | None,
    max_attempts: int | None,
    backoff_base: float | None,
    backoff_cap: float | None,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    """Create or update (and resume) the push subscription of QUEUE to TARGET, an http(s) URL; prints it as JSON.

    \b
    restmq push add jobs https://hooks.example.com/jobs --secret whsec_... --rate 50
    """
    backoff = {k: v for k, v in (("base", backoff_base), ("cap", backoff_cap)) if v is not None} or None
    options: dict[str, Any] = {
        "secret": secret,
        "timeout": push_timeout,
        "max_in_flight": max_in_flight,
        "rate": rate,
        "max_attempts": max_attempts,
        "backoff": backoff,
    }
    with make_client(url, token, timeout) as client:
        shown = client.push_add(queue, target, **options)
    click.echo(json.dumps(shown))


@push.command(name="list", epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@connection_options
@client_errors
def list_(as_json: bool, url: str, token: str | None, timeout: float) -> None:
    """List push subscriptions with their delivery state."""
    with make_client(url, token, timeout) as client:
        subscriptions = client.push_list()
    for sub in subscriptions:
        if as_json:
            click.echo(json.dumps(sub))
            continue
        state = "paused" if sub["paused"] else "active"
        click.echo(
            f"{sub['queue']} {sub['url']} {state} delivered={sub['delivered']} failed={sub['failed']} "
            f"failing={sub['failing']} retrying={sub['retrying']} dead={sub['dead']} "
            f"last_status={sub['last_status']} last_error={sub['last_error']!r}"
        )


@push.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@connection_options
@client_errors
def remove(queue: str, url: str, token: str | None, timeout: float) -> None:
    """Remove the push subscription of QUEUE (its messages stay in the queue)."""
    with make_client(url, token, timeout) as client:
        removed = client.push_remove(queue)
    click.echo(f"removed the push subscription of {queue}" if removed else f"{queue} had no push subscription")
