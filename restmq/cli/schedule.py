"""`restmq schedule add|list|show|pause|resume|remove`: schedules through the HTTP API (docs/schedules.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from restmq.cli._common import EXIT_CODES_HELP, client_errors, connection_options, make_client
from restmq.client.models import Schedule


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(schedule: Schedule) -> str:
    rule = f"every {schedule.every}s" if schedule.every is not None else f"cron '{schedule.cron}' {schedule.tz}"
    state = "paused" if schedule.paused else f"next {_when(schedule.next_tick_ms)}"
    last = f"last {_when(schedule.last_tick_ms)} ({schedule.last_key})" if schedule.fired else "never fired"
    return f"{schedule.id} {schedule.queue} {rule} {state} {last} fired={schedule.fired}"


def _as_json(schedule: Schedule) -> dict[str, object]:
    return {name: getattr(schedule, name) for name in Schedule.__slots__}


@click.group()
def schedule() -> None:
    """Messages published to a queue on a cron or interval schedule, once per tick across every server."""


@schedule.command(epilog=EXIT_CODES_HELP)
@click.argument("queue")
@click.argument("value")
@click.option("--every", type=click.IntRange(1), help="Seconds between ticks, counted from the creation.")
@click.option("--cron", help="5 fields: minute hour day-of-month month day-of-week.")
@click.option("--tz", help="IANA time zone of --cron (default UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@connection_options
@client_errors
def add(
    queue: str,
    value: str,
    every: int | None,
    cron: str | None,
    tz: str | None,
    as_json: bool,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    """Publish VALUE to QUEUE at each tick; {{tick}} and {{tick_ms}} in VALUE become the tick's time.

    \b
    restmq schedule add reports '{"run":"nightly"}' --cron '0 3 * * *' --tz Europe/Paris
    restmq schedule add heartbeat 'beat {{tick}}' --every 60
    """
    if (every is None) == (cron is None):
        raise click.UsageError("give exactly one of --every and --cron")
    with make_client(url, token, timeout) as client:
        created = client.create_schedule(queue, value, every=every, cron=cron, tz=tz)
    click.echo(json.dumps(_as_json(created)) if as_json else _line(created))


@schedule.command(name="list", epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@connection_options
@client_errors
def list_(as_json: bool, url: str, token: str | None, timeout: float) -> None:
    """List the schedules of the queues the token covers."""
    with make_client(url, token, timeout) as client:
        for found in client.schedules():
            click.echo(json.dumps(_as_json(found)) if as_json else _line(found))


def _one_id_command(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text, epilog=EXIT_CODES_HELP)
    @click.argument("schedule_id")
    @connection_options
    @client_errors
    def command(schedule_id: str, url: str, token: str | None, timeout: float) -> None:
        with make_client(url, token, timeout) as client:
            if name == "remove":
                client.delete_schedule(schedule_id)
                click.echo(f"{schedule_id} removed")
                return
            changed = {
                "show": client.schedule,
                "pause": client.pause_schedule,
                "resume": client.resume_schedule,
            }[name](schedule_id)
        click.echo(_line(changed))

    return command


for _name, _help in (
    ("show", "Show one schedule: its next tick and the last one published."),
    ("pause", "Publish nothing until resumed."),
    ("resume", "Publish again from the next tick (ticks that fell while paused are skipped)."),
    ("remove", "Remove a schedule (the messages it published stay)."),
):
    schedule.add_command(_one_id_command(_name, _help))
