"""`restmq ring`: a ring's placement (each node's capacity, effective weight, share of queues and messages, the
placement version, overrides), and `restmq ring pin|drain|unpin NODE` to override the automatic weights.
Talks to a server's admin routes (GET/POST /admin/ring, restmq/web/ring.py), so it works against a remote one."""

from __future__ import annotations

import json
from typing import Any

import click
import httpx

from restmq.cli._common import EXIT_CODES_HELP, ConnectFailure, Failure, connection_options


def _call(method: str, path: str, url: str, token: str | None, timeout: float, **params: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=timeout) as http:
            reply = http.request(method, path, params=params)
    except httpx.HTTPError as exc:
        raise ConnectFailure(f"cannot reach {url}: {exc}") from None
    try:
        body: dict[str, Any] = reply.json()
    except ValueError:
        raise Failure(f"{reply.status_code} from {url}{path}: not a JSON answer") from None
    if reply.status_code != 200:  # worded as the client library words errors: message (CODE, HTTP status)
        error, code = (body.get("error"), body.get("code")) if isinstance(body, dict) else (None, None)
        raise Failure(f"{error or body} ({code or 'ERROR'}, HTTP {reply.status_code})")
    return body


def _number(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _memory(capacity: dict[str, Any] | None) -> str:
    if not capacity:
        return "-"
    used, limit = capacity["used"], capacity["limit"]
    share = f"{100 * used / limit:.0f}%" if limit else "?"
    return f"{used / 2**20:.1f}/{limit / 2**20:.0f} MiB ({share})"


def show(view: dict[str, Any]) -> None:
    version = view["version"]
    click.echo(
        f"placement: {view['placement']}"
        + (f"  version {version} by {view['computed_by']}" if version is not None else "")
        + (f"  interval {view['interval']}s" if view["interval"] is not None else "")
    )
    if view.get("conflict"):
        click.echo(f"CONFLICT: {view['conflict']}")
    total_queues = sum(row["queues"] or 0 for row in view["nodes"]) or 1
    total_messages = sum(row["messages"] or 0 for row in view["nodes"]) or 1
    click.echo(f"{'#':>2} {'node':<40} {'state':<5} {'conf':>5} {'weight':>7} {'pin':>5} {'ring':>6} "
               f"{'queues':>12} {'messages':>14} {'memory':<26} {'ping ms':>7}")  # fmt: skip
    for row in view["nodes"]:
        capacity = row["capacity"]
        queues = (
            f"{row['queues']} ({100 * (row['queues'] or 0) / total_queues:.0f}%)" if row["queues"] is not None else "-"
        )
        messages = row["messages"]
        messages_text = f"{messages} ({100 * messages / total_messages:.0f}%)" if messages is not None else "-"
        click.echo(
            f"{row['index']:>2} {row['node'][:40]:<40} {row['state']:<5} {_number(row['configured'], 1):>5} "
            f"{_number(row['weight'], 3):>7} {_number(row['override'], 1) if row['override'] is not None else '':>5} "
            f"{100 * row['ring_share']:>5.1f}% {queues:>12} {messages_text:>14} {_memory(capacity):<26} "
            f"{_number(capacity['latency_ms']) if capacity else '-':>7}"
        )
    if "queue" in view:
        click.echo(f"queue {view['queue']['name']}: owner node {view['queue']['owner']}")


@click.group(invoke_without_command=True, epilog=EXIT_CODES_HELP)
@click.option("--queue", default=None, help="Also show which node owns this queue now.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer.")
@connection_options
@click.pass_context
def ring(ctx: click.Context, queue: str | None, as_json: bool, url: str, token: str | None, timeout: float) -> None:
    """Show a ring's placement (admin): nodes, capacity, effective weights, shares, placement version.

    \b
    restmq ring
    restmq ring --queue orders          prints the owner of orders too
    restmq ring drain 2                 node 2 takes no new queue; its messages drain
    restmq ring pin 0 --weight 2.5
    restmq ring unpin 2
    """
    ctx.obj = {"url": url, "token": token, "timeout": timeout, "json": as_json}
    if ctx.invoked_subcommand is not None:
        return
    view = _call("GET", "/admin/ring", url, token, timeout)
    if queue is not None:
        view["queue"] = {
            "name": queue,
            "owner": _call("GET", "/admin/ring", url, token, timeout, queue=queue)["owners"][queue],
        }
    click.echo(json.dumps(view, indent=2)) if as_json else show(view)


def _override(ctx: click.Context, node: str, action: str, **params: Any) -> None:
    options = ctx.obj
    view = _call(
        "POST", f"/admin/ring/{action}", options["url"], options["token"], options["timeout"], node=node, **params
    )
    click.echo(json.dumps(view, indent=2)) if options["json"] else show(view)


@ring.command()
@click.argument("node")
@click.option("--weight", type=click.FloatRange(0, 1000), required=True, help="The weight to pin (0 drains).")
@click.pass_context
def pin(ctx: click.Context, node: str, weight: float) -> None:
    """Pin NODE (index or URL as shown) at --weight, whatever its measured capacity."""
    _override(ctx, node, "pin", weight=weight)


@ring.command()
@click.argument("node")
@click.pass_context
def drain(ctx: click.Context, node: str) -> None:
    """Weight 0 for NODE: no new queue lands there; its stored messages are still delivered."""
    _override(ctx, node, "drain")


@ring.command()
@click.argument("node")
@click.pass_context
def unpin(ctx: click.Context, node: str) -> None:
    """Give NODE back to the measured weights."""
    _override(ctx, node, "unpin")


@ring.command()
@click.pass_context
def reset(ctx: click.Context) -> None:
    """Replace a placement table written for another --redis list by one for this server's list.

    Use it after changing the node list on purpose (every server restarted with the new list): servers still
    running with the old list refuse the new table from then on, and show the conflict."""
    options = ctx.obj
    view = _call("POST", "/admin/ring/reset", options["url"], options["token"], options["timeout"])
    click.echo(json.dumps(view, indent=2)) if options["json"] else show(view)
