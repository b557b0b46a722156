"""docs/benchmarks.md from a suite run: the targets, the tables, the charts, the command and the machine."""

from __future__ import annotations

import argparse
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import charts
import dashboards
import streams
from http_load import GET_CEILING, TESTS

BUSY = 0.2  # cores used by other processes during the rounds above which the report warns
LABELS = {
    "post": "POST 1 msg (form)",
    "get": "GET 1 msg",
    "batch": "POST 100 msgs (JSON)",
    "lease": "lease + ack cycle",
    "next": "lease + ack cycle, ack= on the next lease",
}
ENGINE_LABELS = {"post": "LPUSH, no pipelining", "batch": "LPUSH, 32 per round trip"}
IDLE_TARGET_KIB = 20


@dataclass(frozen=True)
class EngineCost:
    """One row of the engine-cost table: what one message (or one lease + ack cycle) costs the engine."""

    label: str
    test: str  # the request-rate test it comes from
    per_request: float  # RestMQ's figure per request times this (1/100: per message of a batch; 2: per cycle)
    bare_test: str  # the bare app's test it is compared with, and the factor for its figure per request
    bare_per_request: float
    goal: float  # the performance issue's target for the ratio RestMQ / bare app


ENGINE_COSTS = (
    EngineCost("POST 1 message", "post", 1, "post", 1, 1.3),
    EngineCost("GET 1 message", "get", 1, "get", 1, 1.3),
    EngineCost("POST 100 messages, per message", "batch", 1 / 100, "batch", 1 / 100, 2.0),
    EngineCost("lease + ack cycle (bare: one RPOP)", "lease", 2, "get", 1, 3.0),
)


def engine_costs(med: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """CPU µs per message (per cycle for lease + ack) of the engine and of the server, RestMQ and the bare app,
    and what that makes the ceiling of one engine node (it runs commands on one thread)."""

    def cpu(test: str, who: str, field: str, factor: float) -> float | None:
        value = med.get(test, {}).get(who, {}).get(field)
        return None if value is None else value * factor

    rows = []
    for c in ENGINE_COSTS:
        mine = cpu(c.test, "restmq", "engine_cpu_us", c.per_request)
        bare = cpu(c.bare_test, "baseline", "engine_cpu_us", c.bare_per_request)
        rows.append(
            {
                **_ratio(f"engine CPU per {c.label} ≤ {c.goal:g}x the bare app's (µs)", mine, bare, c.goal, False),
                "label": c.label,
                "goal": c.goal,
                "ceiling": 1e6 / mine if mine else None,
                "bare_ceiling": 1e6 / bare if bare else None,
                "server": cpu(c.test, "restmq", "server_cpu_us", c.per_request),
                "bare_server": cpu(c.bare_test, "baseline", "server_cpu_us", c.bare_per_request),
            }
        )
    return rows


def engine_cost_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| per message, CPU µs | engine: RestMQ | engine: bare app | ratio | target | met? "
        "| one engine node's ceiling, msg/s: RestMQ | bare app | server: RestMQ | bare app |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for r in rows:
        met = "–" if r["met"] is None else ("yes" if r["met"] else "**no**")
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"| {r['label']} | {_num(r['restmq'])} | {_num(r['other'])} | {ratio} | ≤ {r['goal']:g}x | {met} "
            f"| {_num(r['ceiling'])} | {_num(r['bare_ceiling'])} | {_num(r['server'])} | {_num(r['bare_server'])} |"
        )
    return "\n".join(lines)


def _ratio(target: str, mine: float | None, theirs: float | None, goal: float, higher: bool = True) -> dict[str, Any]:
    if not mine or not theirs:
        return {"target": target, "restmq": mine, "other": theirs, "ratio": None, "met": None}
    ratio = mine / theirs
    return {
        "target": target,
        "restmq": mine,
        "other": theirs,
        "ratio": ratio,
        "met": ratio >= goal if higher else ratio <= goal,
    }


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the performance issue, met or not, each a ratio measured in this run."""
    med = result["http"]

    def rate(test: str, who: str, field: str = "rps") -> float | None:
        return med.get(test, {}).get(who, {}).get(field)

    out = [
        _ratio("single POST ≥ 2.0x the bare app (req/s)", rate("post", "restmq"), rate("post", "baseline"), 2.0),
        _ratio("single GET ≥ 1.5x the bare app (req/s)", rate("get", "restmq"), rate("get", "baseline"), 1.5),
        _ratio(
            "batch add ≥ 0.35x the engine's pipelined LPUSH (msg/s vs commands/s)",
            rate("batch", "restmq", "msgs"),
            rate("batch", "engine"),
            0.35,
        ),
        _ratio(
            "lease+ack cycles/s ≥ 0.6x plain GET req/s", rate("lease", "restmq", "msgs"), rate("get", "restmq"), 0.6
        ),
        _ratio(
            "lease+ack cycles/s, ack= on the next lease, ≥ 0.6x plain GET req/s",
            rate("next", "restmq", "msgs"),
            rate("get", "restmq"),
            0.6,
        ),
    ]
    out += [{k: r[k] for k in ("target", "restmq", "other", "ratio", "met")} for r in engine_costs(med)]
    stream_results = result.get("streams") or {}
    for m in streams.targets_met(stream_results):
        out.append(
            {"target": m["target"], "restmq": m["restmq"], "other": m["nchan"], "ratio": m["ratio"], "met": m["met"]}
        )
    watched = result.get("dashboards")
    if watched and watched["loaded"]["p99_ms"] is not None:
        p99 = watched["loaded"]["p99_ms"]
        out.append(
            {
                "target": f"/health p99 < {dashboards.TARGET_P99_MS:g} ms with {watched['queues']:,} queues and "
                f"{watched['dashboards']} open dashboards (ms)",
                "restmq": p99,
                "other": dashboards.TARGET_P99_MS,
                "ratio": p99 / dashboards.TARGET_P99_MS,
                "met": watched["met"],
            }
        )
    idle = stream_results.get("idle", {}).get("restmq", {})
    if idle.get("kib_per_connection") is not None:
        kib = idle["kib_per_connection"]
        out.append(
            {
                "target": f"{idle['requested']:,} idle SSE connections ≤ {IDLE_TARGET_KIB} KiB each",
                "restmq": kib,
                "other": IDLE_TARGET_KIB,
                "ratio": kib / IDLE_TARGET_KIB,
                "met": kib <= IDLE_TARGET_KIB,
            }
        )
    return out


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | RestMQ | compared with | ratio | met? |", "|---|--:|--:|--:|---|"]
    for r in rows:
        met = "–" if r["met"] is None else ("yes" if r["met"] else "**no**")
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['target']} | {_num(r['restmq'])} | {_num(r['other'])} | {ratio} | {met} |")
    return "\n".join(lines)


def http_table(med: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| test | contender | req/s | msg/s | p50 ms | p90 ms | p99 ms | CPU µs/req server + engine |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for test in TESTS:
        for who, m in med.get(test, {}).items():
            label = ENGINE_LABELS[test] if who == "engine" else LABELS[test]
            cpu = f"{m['server_cpu_us']:.0f}" + (
                f" + {m['engine_cpu_us']:.0f}" if who in ("restmq", "baseline") else ""
            )
            lines.append(
                f"| {label} | {who} | {_num(m['rps'])} | {_num(m['msgs'])} | {m['p50_ms']:.2f} | {_num(m['p90_ms'])} "
                f"| {m['p99_ms']:.2f} | {cpu} |"
            )
    return "\n".join(lines)


def engine_cost_section(med: dict[str, dict[str, dict[str, float]]]) -> str:
    return f"""## Engine cost per message

{engine_cost_table(engine_costs(med))}

The engine runs every command on one thread, so its CPU per message is the ceiling of one engine node however
many server processes stand in front of it: ceiling = 10⁶ / engine µs (for lease + ack: cycles/s). Server
processes scale with cores. From the request-rate tests below: CPU time of the engine (and of the server
process) during a test divided by its requests, then per message (a POST of 100 counts 100, a lease + ack cycle is
its two requests). The bare app stores a message with one `LPUSH` and takes it with one `RPOP`.
[capacity.md](capacity.md) turns these figures into messages/s for N server processes and k engine nodes."""


def rounds_table(rounds: list[dict[str, Any]]) -> str:
    lines = [
        "| test | round | contender | req/s | msg/s | p50 ms | p99 ms | CPU µs/req | others' CPU |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rounds:
        lines.append(
            f"| {r['test']} | {r['round']} | {r['contender']} | {_num(r['rps'])} | {_num(r['msgs'])} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_us']:.0f} + {r['engine_cpu_us']:.0f} "
            f"| {r['other_cores']:.2f} |"
        )
    return "\n".join(lines)


def longpoll_table(r: dict[str, Any] | None) -> str:
    if not r:
        return "(not run: --skip-streams)"
    got = "all" if r["received"] == r["expected"] else "**not all**"
    cpu = " / ".join(str(r[f"{who}_cores"]) for who in ("server", "engine", "client", "others"))
    return f"""| metric | restmq |
|---|--:|
| load | {r["consumers"]} long-polls (`GET /q/<queue>?wait=5`), {r["rate"]:,} msg/s for {r["seconds"]} s |
| publish-to-consumer p50 / p99 / max | {r["p50_ms"]} / {r["p99_ms"]} / {r["max_ms"]} ms |
| deliveries/s (publishing reached {r["publish_rate"]:,.0f}/s) | {r["deliveries_per_s"]:,.0f} |
| received / expected | {r["received"]:,} / {r["expected"]:,} ({got}) |
| CPU cores server / engine / client / others | {cpu} |"""


def charts_of(result: dict[str, Any], out: Path) -> list[Path]:
    pictures = charts.engine_cost_charts(out, engine_costs(result["http"]))
    pictures += charts.http_charts(out, result["http"], LABELS)
    stream_results = result.get("streams") or {}
    rows = []
    for test, per in stream_results.items():
        if test == "idle":
            continue
        for who, r in per.items():
            if "error" not in r:
                title = streams.TITLES[test]
                rows.append(
                    {
                        "test": title,
                        "contender": who,
                        **{k: r.get(k, math.nan) for k in ("deliveries_per_s", "p50_ms", "p99_ms")},
                    }
                )
    poll = result.get("longpoll")
    if poll:
        rows.append(
            {
                "test": "Long-poll",
                "contender": "restmq",
                **{k: poll[k] for k in ("deliveries_per_s", "p50_ms", "p99_ms")},
            }
        )
    if rows:
        pictures += charts.stream_charts(out, rows)
    return pictures


STANDALONE_BEGIN = "<!-- standalone:begin -->"
STANDALONE_END = "<!-- standalone:end -->"


def standalone_sections(previous: str) -> str:
    """The sections of the benchmarks run on their own (bench/placement.py, push.py, sqs.py: each prints its table
    and its command, pasted between these markers); a suite run keeps them as they were."""
    if STANDALONE_BEGIN in previous and STANDALONE_END in previous:
        return previous[previous.index(STANDALONE_BEGIN) : previous.index(STANDALONE_END) + len(STANDALONE_END)]
    return ""


def markdown(
    result: dict[str, Any], args: argparse.Namespace, pictures: list[Path], where: Path, kept: str = ""
) -> str:
    info = result["machine"]
    others = statistics.median(r["other_cores"] for r in result["rounds"]) if result["rounds"] else 0.0
    busy = (
        f"\n**Other processes used {others:.2f} cores (median) during the rounds: figures are low and noisy.**\n"
        if others > BUSY
        else ""
    )
    images = "\n".join(f"![{p.stem}]({os.path.relpath(p, where)})" for p in pictures)
    stream_results = result.get("streams") or {}
    names = sorted({who for per in stream_results.values() for who in per}, key=lambda n: n != "restmq")
    stream_part = streams.table(stream_results, names) if stream_results else "(not run: --skip-streams)"
    nchan_note = f"\nnginx + nchan was not measured: {result['nchan']}\n" if result.get("nchan") else ""
    standalone = f"\n{kept}\n" if kept else ""
    return f"""# Benchmarks

Generated by `bench/run.py` on {info["date"]}; run it again rather than editing this file.
What the profile showed and what was changed because of it: [performance.md](performance.md). How to size a
deployment from these figures: [capacity.md](capacity.md).

## Targets

{targets_table(targets(result))}
{busy}{nchan_note}
Each ratio is measured within this one run, contenders alternating round by round.

{engine_cost_section(result["http"])}

## Request rates

{http_table(result["http"])}

Medians of {args.rounds} round(s) of {args.duration:g} s, 50 connections. **restmq**: `restmq serve` ({args.server}),
one worker. **baseline**: `bench/baseline_app.py`, bare Starlette + redis.asyncio (hiredis) on uvicorn, one worker.
**engine**: `redis-benchmark -c 50 -d 100 -t lpush` against the same engine, without pipelining and with `-P 32`
(its p90 column is empty: redis-benchmark reports p95). **nchan**: nginx with one worker publishing each POST body
to a channel.

## Streaming

{stream_part}

### Long-poll

{longpoll_table(result.get("longpoll"))}

{dashboards.section(result.get("dashboards"))}

## Charts

{images}

## Command

    {result["command"]}

## Machine

{chr(10).join(f"- {k}: {v}" for k, v in info.items())}

## Method

- One embedded engine (Valkey on a unix socket, AOF `appendfsync everysec`, in a temporary directory) serves RestMQ,
  the bare app and redis-benchmark; they use different keys.
- Request rates: `wrk -t1 -c50` on loopback with `bench/post.lua` (form body `value=<100 bytes>`), `bench/get.lua`,
  `bench/batch.lua` (a JSON array of 100 messages of 100 bytes) and `bench/leaseack.lua` (GET `?lease=30`, then
  DELETE the key: two requests per cycle). Any wrk error (connect, read, write, timeout, status ≥ 400) aborts the
  run. {"A 1 s warm-up per contender and test is not counted." if args.warmup else "No warm-up."}
- Add tests start each round from an empty queue. Take queues are topped up to {GET_CEILING:,} × duration messages
  before each round and checked to be non-empty after it: no request got a 204.
- CPU µs/req: CPU time (user + system, from `/proc/<pid>/stat`) the server process and the engine spent per request.
  It depends less than req/s on what else runs on the machine. "Others' CPU" is what processes outside the
  benchmark used meanwhile.
- Streaming: `bench/streams.py` (raw asyncio sockets on uvloop in this process) against RestMQ and nginx + nchan in
  turn, each started afresh for it; see its docstring for each test. Long-poll: `bench/longpoll.py`. Many queues
  and open dashboards: `bench/dashboards.py`, on an engine and a server of its own.
- The machine has {os.cpu_count()} cores shared by the load generator, the server under test and the engine: absolute
  numbers are lower than on separate machines; compare the ratios.
- Latencies of the request-rate tests are measured at saturation (closed loop), so they are mostly queueing time.
{busy}
## Rounds

{rounds_table(result["rounds"])}
{standalone}"""
