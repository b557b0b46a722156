"""The "Measured" section bench/faults.py writes into docs/faults.md (the rest of that file is left alone)."""

from __future__ import annotations

from pathlib import Path

from fault_common import Context, Row

HEADING = "## Measured"
INTRO = """# Faults: what a client sees, and how fast RestMQ recovers

What happens when the engine, the disk, the network or a server process fails, and how long recovery takes.
The section below is measured by `bench/faults.py` with real processes on loopback; it rewrites only that section.
"""


def measured(rows: list[Row], ctx: Context, command: str, info: dict[str, str]) -> str:
    lines = [
        HEADING,
        "",
        f"Measured {info['date']} with `{command}` (RestMQ {info['restmq revision']}).",
        f"Machine: {info['cpu']}, {info['cores']}, {info['memory']}, {info['os']}, {info['python']},"
        f" engine {info['engine']}.",
        "",
        f"Load during each fault: {ctx.producers} producers adding {ctx.rate:g} messages/s in all (a failed add is"
        f" retried with its Idempotency-Key), {ctx.consumers} consumers leasing and acknowledging; `restmq serve` on"
        f" {ctx.serve.server}, one worker"
        + deadline_text(ctx)
        + f" A scenario waits {ctx.limit:g} s at most for service to come back.",
        "",
        "| scenario | fault | answers during the fault | worst latency | service back | lost | duplicated | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = (row.scenario, row.fault, row.answers, row.worst, row.recovery, row.lost, row.duplicated, row.notes)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += [
        "",
        "- *answers during the fault*: statuses of the requests started from the fault until service was back"
        " (`closed`: the server closed the connection after answering; `503 without Retry-After`: a 503 that does"
        " not say when to retry; `reset`: the connection broke; `timeout`: no answer within the client's timeout;"
        " `unanswered`: still waiting when the load stopped).",
        "- *service back*: until `/ready` answers 200 and an add succeeds, from the kill, or from SIGCONT / freeing"
        " the disk.",
        "- *lost*: adds answered 200 whose message was never delivered, after draining the queue."
        " *duplicated*: a value stored under two keys, or one message delivered twice without its lease running out"
        " (deliveries after a lease ran out are counted apart: that is the lease contract).",
        "",
    ]
    return "\n".join(lines)


def deadline_text(ctx: Context) -> str:
    deadline = ctx.serve.backend_timeout
    if deadline is None:
        return ", without a `--backend-timeout` option (this restmq has none)."
    return f", `--backend-timeout {deadline:g}`" + ("." if ctx.serve.backend_timeout_given else " (its default).")


def write(path: Path, section: str) -> None:
    """Replace the Measured section of `path` (up to the next `## ` heading), or add it; create the file if need be."""
    text = path.read_text() if path.exists() else INTRO
    start = text.find(HEADING + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + ("" if end < 0 else "\n" + text[end + 1 :])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
