"""`restmq stats`: queue statistics as a table, once or refreshing."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from restmq.cli._common import EXIT_CODES_HELP, client_errors, connection_options, make_client
from restmq.client import Client, QueueStats

COLUMNS = ("length", "delayed", "leased", "dead", "consumers")
COUNTERS = ("added", "delivered", "acked")  # the one-queue view shows every counter


def _queues_table(queues: list[QueueStats], nodes: object, following: str | None = None) -> RenderableType:
    table = Table(title="RestMQ queues", title_justify="left", header_style="bold")
    table.add_column("queue", overflow="fold")
    for name in (*COLUMNS, "status", "policy", *COUNTERS):
        table.add_column(name, justify="left" if name in ("status", "policy") else "right")
    for stats in queues:
        status = Text(stats.status, style="red" if stats.status == "stop" else "green")
        table.add_row(
            stats.queue,
            *(f"{getattr(stats, name):,}" for name in COLUMNS),
            status,
            stats.policy,
            *(f"{stats.counters.get(name, 0):,}" for name in COUNTERS),
        )
    if not queues:
        table.caption = "no queues"
    elif following is not None:
        table.caption = f"more queues follow: --after {following}"
    parts: list[RenderableType] = [table]
    if isinstance(nodes, dict) and nodes:
        parts.append(Text("backend: " + ", ".join(f"{node} {state}" for node, state in nodes.items()), style="dim"))
    return Group(*parts)


def _queue_table(stats: QueueStats) -> RenderableType:
    table = Table(title=f"queue {stats.queue}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", justify="right")
    for name in COLUMNS:
        table.add_row(name, f"{getattr(stats, name):,}")
    table.add_row("status", Text(stats.status, style="red" if stats.status == "stop" else "green"))
    table.add_row("policy", stats.policy)
    table.add_row("max_deliveries", str(stats.max_deliveries or "unlimited"))
    for name, value in stats.counters.items():
        table.add_row(name, f"{value:,}")
    return table


def _snapshot(client: Client, queue: str | None, as_json: bool, page: Page) -> RenderableType | str:
    if queue is not None:
        stats = client.stats(queue)
        return json.dumps(stats.to_dict()) if as_json else _queue_table(stats)
    overview = client.stats_all(limit=page.limit, after=page.after)  # every page of GET /stats/, or a limit
    if as_json:
        more = {"next": overview.next} if page.limit is not None else {}
        return json.dumps({"queues": [s.to_dict() for s in overview.queues], "nodes": overview.nodes, **more})
    return _queues_table(overview.queues, overview.nodes, overview.next)


@dataclass(frozen=True)
class Page:
    """Which queues the table shows: the first `limit` (None: all) after `after`."""

    limit: int | None = None
    after: str | None = None


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queue", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON (one line per refresh).")
@click.option("-w", "--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True, help="Seconds between refreshes."
)
@click.option("--times", type=click.IntRange(min=1), help="With --watch: stop after this many refreshes.")
@click.option(
    "--limit", type=click.IntRange(min=1), help="Show the first N queues in name order (default: every queue)."
)
@click.option("--after", metavar="QUEUE", help="Start after this queue name (with --limit: the next page).")
@connection_options
@client_errors
def stats(
    queue: str | None,
    as_json: bool,
    watch: bool,
    interval: float,
    times: int | None,
    limit: int | None,
    after: str | None,
    url: str,
    token: str | None,
    timeout: float,
) -> None:
    """Show statistics of QUEUE, or of every queue: sizes, status, policy and counters.

    \b
    restmq stats                        every queue, one row each
    restmq stats jobs                   one queue, with its counters
    restmq stats --watch                refresh every second until Ctrl-C
    restmq stats --limit 50             the first 50 queues by name (the server pages: every page is read
                                        otherwise, which takes long with many thousands of queues)
    """
    page = Page(limit, after)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    with make_client(url, token, timeout) as client:
        if not watch:
            _show(console, _snapshot(client, queue, as_json, page))
            return
        try:
            if as_json or not console.is_terminal:
                refreshes = 0
                while True:
                    _show(console, _snapshot(client, queue, as_json, page))
                    refreshes += 1
                    if times is not None and refreshes >= times:
                        return
                    time.sleep(interval)
            with Live(_snapshot(client, queue, False, page), console=console, auto_refresh=False) as live:
                refreshes = 1
                while times is None or refreshes < times:
                    time.sleep(interval)
                    live.update(_snapshot(client, queue, False, page), refresh=True)
                    refreshes += 1
        except KeyboardInterrupt:
            pass


def _show(console: Console, rendered: RenderableType | str) -> None:
    if isinstance(rendered, str):
        click.echo(rendered)
    else:
        console.print(rendered)
