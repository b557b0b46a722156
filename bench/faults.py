"""Recovery from faults, measured: real processes on loopback under a steady load of producers and consumers.

    .venv/bin/python bench/faults.py           # full run (about 5 minutes): the "Measured" section of docs/faults.md
    .venv/bin/python bench/faults.py --quick   # short faults, small loads (CI): bench/results/faults-quick.md

Scenarios (`--only NAME`, repeatable):

- engine-kill: kill -9 of the embedded engine of `restmq serve` -> time until /ready is 200 and an add succeeds;
- engine-freeze: SIGSTOP of that engine for 30 s (5 s quick), then SIGCONT -> the longest request during the freeze
  (with --backend-timeout when `restmq serve` has the option), time to service after SIGCONT;
- disk-full: the data dir on a 64 MB tmpfs (needs root), filled -> answers seen, time to service after freeing it;
- server-kill: two `restmq serve` on one engine, roundrobin SSE consumers on both, kill -9 of one -> the longest
  delivery delay of any message;
- node-restart: a 2-node ring, one node's engine killed and restarted on its AOF, repeated -> time until GETs see its
  messages again, and GETs answered 204 while that node held ready messages.

For each: the server's answers by status during the fault, and the messages acknowledged but never delivered (lost)
or delivered twice. Producers retry a failed add with an Idempotency-Key; consumers lease and acknowledge.

It measures, it does not judge: a slow or missing recovery is reported ("not back within 60 s") and the run goes on.
It exits non-zero only on a harness error. Every process it starts and the tmpfs are cleaned up, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

import fault_report
from common import BENCH, ROOT, command_line, machine
from fault_common import Context, Row
from fault_engine import disk_full, engine_freeze, engine_kill
from fault_procs import Serve
from fault_ring import node_restart
from fault_topology import server_kill

SCENARIOS: dict[str, Callable[[Context], Awaitable[Row]]] = {
    "engine-kill": engine_kill,
    "engine-freeze": engine_freeze,
    "disk-full": disk_full,
    "server-kill": server_kill,
    "node-restart": node_restart,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short faults and small loads (well under 2 minutes)")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="run only this scenario")
    parser.add_argument("--server", default="uvicorn", choices=("uvicorn", "granian"), help="RestMQ's HTTP server")
    parser.add_argument(
        "--backend-timeout", type=float, help="passed to restmq serve when it has the option (default: its own)"
    )
    parser.add_argument("--limit", type=float, help="seconds to wait for service to come back (60, quick 10)")
    parser.add_argument("--output", type=Path, help="markdown report (default docs/faults.md, quick: bench/results)")
    return parser.parse_args()


def context(args: argparse.Namespace, stack: contextlib.ExitStack, tmp: Path) -> Context:
    quick = args.quick
    return Context(
        stack=stack,
        tmp=tmp,
        serve=Serve(args.server, args.backend_timeout),
        quick=quick,
        limit=args.limit or (10.0 if quick else 60.0),
        warmup=1.0 if quick else 3.0,
        after=1.0 if quick else 3.0,
        freeze=5.0 if quick else 30.0,
        disk_full=3.0 if quick else 10.0,
        rate=50.0 if quick else 200.0,
        producers=2 if quick else 4,
        consumers=2 if quick else 4,
        repeats=1 if quick else 5,
    )


async def run(ctx: Context, names: list[str]) -> list[Row]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)  # unwinds like Ctrl-C
    rows = []
    for name in names:
        started = time.monotonic()
        print(f"{name} ...", flush=True)
        with contextlib.ExitStack() as own:  # each scenario's processes stop before the next one starts
            ctx.stack = own
            row = await SCENARIOS[name](ctx)
        rows.append(row)
        print(
            f"{name}: {row.recovery}; answers {row.answers}; worst {row.worst}; lost {row.lost};"
            f" duplicated {row.duplicated} ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
    return rows


def main() -> int:
    args = parse_args()
    output: Path = args.output or (BENCH / "results/faults-quick.md" if args.quick else ROOT / "docs/faults.md")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the clean-up below runs
    names = args.only or list(SCENARIOS)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restmq-faults-")))
        ctx = context(args, stack, tmp)
        try:
            rows = asyncio.run(run(ctx, names))
        except asyncio.CancelledError:
            print("stopped by SIGTERM (every process the benchmark started has been stopped)", file=sys.stderr)
            return 143
    info, command = machine(), command_line("bench/faults.py")
    fault_report.write(output, fault_report.measured(rows, ctx, command, info))
    raw = BENCH / ("results/faults-quick.json" if args.quick else "results/faults.json")
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"command": command, "machine": info, "rows": [asdict(r) for r in rows]}, indent=2))
    print(f"wrote {os.path.relpath(output)} and {os.path.relpath(raw)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (every process the benchmark started has been stopped)")
