"""PNG charts of a suite run (matplotlib, no screen needed): throughput and latency percentiles."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"restmq": "#c0392b", "baseline": "#2980b9", "engine": "#7f8c8d", "nchan": "#27ae60"}


def _color(name: str) -> str:
    return COLORS.get(name.split(" ")[0], "#8e44ad")


def grouped_bars(
    path: Path,
    title: str,
    groups: list[str],
    series: dict[str, list[float]],
    unit: str,
    log: bool = False,
) -> Path:
    """One bar per series within each group; missing values (nan) leave a gap."""
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.55 * len(groups) * max(1, len(series)) / 2))
    height = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ys = [g + i * height for g in range(len(groups))]
        bars = ax.barh(ys, [0 if math.isnan(v) else v for v in values], height, label=name, color=_color(name))
        for bar, value in zip(bars, values, strict=True):
            if not math.isnan(value):
                ax.annotate(
                    f" {value:,.0f}" if value >= 100 else f" {value:.2f}",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    va="center",
                    fontsize=8,
                )
    ax.set_yticks([g + 0.4 - height / 2 for g in range(len(groups))], groups)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    if log:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def http_charts(out: Path, med: dict[str, dict[str, dict[str, float]]], labels: dict[str, str]) -> list[Path]:
    """Throughput (messages/s, log scale) and p50/p99 latency of every request-rate test."""
    tests = [t for t in labels if t in med]
    contenders = list(dict.fromkeys(c for t in tests for c in med[t]))
    groups = [labels[t] for t in tests]

    def values(name: str, field: str) -> list[float]:
        return [med[t].get(name, {}).get(field, math.nan) for t in tests]

    throughput = {c: values(c, "msgs") for c in contenders}
    latency = {f"{c} {p}": values(c, f"{p}_ms") for c in contenders for p in ("p50", "p99")}
    return [
        grouped_bars(
            out / "throughput.png", "Messages per second (median of the rounds)", groups, throughput, "msg/s", True
        ),
        grouped_bars(out / "latency.png", "Latency at saturation, 50 connections (ms)", groups, latency, "ms"),
    ]


def stream_charts(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """Streaming: one group per test, one bar per contender, for deliveries/s and for p50/p99 latency.
    `rows`: {"test": label, "contender": name, "deliveries_per_s": x, "p50_ms": y, "p99_ms": z} (any may be nan)."""
    tests = list(dict.fromkeys(r["test"] for r in rows))
    contenders = list(dict.fromkeys(r["contender"] for r in rows))

    def values(name: str, field: str) -> list[float]:
        found = {r["test"]: r.get(field, math.nan) for r in rows if r["contender"] == name}
        return [float(found.get(t, math.nan)) for t in tests]

    rate = {c: values(c, "deliveries_per_s") for c in contenders}
    latency = {f"{c} {p}": values(c, f"{p}_ms") for c in contenders for p in ("p50", "p99")}
    return [
        grouped_bars(out / "streams-throughput.png", "Streaming deliveries per second", tests, rate, "deliveries/s"),
        grouped_bars(out / "streams-latency.png", "Publish-to-consumer latency (ms)", tests, latency, "ms"),
    ]


def engine_cost_charts(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """The engine-cost table drawn: engine CPU per message, RestMQ against the bare app, and the ceiling of
    one engine node it makes. `rows`: report.engine_costs()."""
    if not any(r["restmq"] for r in rows):
        return []
    groups = [r["label"] for r in rows]

    def values(field: str) -> list[float]:
        return [math.nan if r[field] is None else float(r[field]) for r in rows]

    cost = {"restmq": values("restmq"), "baseline (bare app)": values("other")}
    ceiling = {"restmq": values("ceiling"), "baseline (bare app)": values("bare_ceiling")}
    return [
        grouped_bars(
            out / "engine-cost.png", "Engine CPU per message (µs; lease + ack: per cycle)", groups, cost, "µs"
        ),
        grouped_bars(
            out / "engine-ceiling.png",
            "Ceiling of one engine node: 10⁶ / engine µs (messages/s; lease + ack: cycles/s)",
            groups,
            ceiling,
            "msg/s",
            True,
        ),
    ]
