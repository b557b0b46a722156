"""Capacity-aware placement: the placement table and the weight formula. Pure functions, no I/O.

The table (one JSON value, stored under `rmq:placement` on every ring node; the highest version wins) says
which weight each node has on the ring. `measured_weight` turns a node's sampled capacity into a weight,
`next_weights` applies the damping (floor, hysteresis) and the operators' overrides. docs/scaling.md
explains the formula; restmq/storage/placement_keeper.py does the sampling, the lease and the syncing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FLOOR = 0.02  # a live node keeps this share of its configured weight (3 ring points per unit): never 0 by accident
HYSTERESIS = 0.15  # a node's weight changes only when the new value differs by more than 15 %
FULL_SPEED_FREE = 0.5  # at least half of the memory free: full weight; below, the weight falls linearly...
RESERVE_FREE = 0.1  # ...to the floor at 10 % free (a nearly full node takes almost no new queue)
LATENCY_REFERENCE_MS = 20.0  # a PING round trip up to 20 ms costs nothing; above, the weight falls as 20/latency


@dataclass(frozen=True)
class Capacity:
    """One node's sample: memory in bytes (limit: maxmemory, or the host's memory when unset) and PING latency."""

    used: int
    limit: int
    latency_ms: float

    @property
    def free_share(self) -> float:
        return max(0.0, 1.0 - self.used / self.limit) if self.limit > 0 else 1.0


def measured_weight(configured: float, capacity: Capacity) -> float:
    """configured x memory factor x latency factor, never below FLOOR x configured."""
    memory = min(1.0, max(0.0, (capacity.free_share - RESERVE_FREE) / (FULL_SPEED_FREE - RESERVE_FREE)))
    latency = min(1.0, LATENCY_REFERENCE_MS / max(capacity.latency_ms, LATENCY_REFERENCE_MS))
    return round(configured * max(FLOOR, memory * latency), 3)


def damped(current: float, proposed: float, configured: float) -> float:
    """The current weight unless the proposed one differs enough (or reaches the floor or full weight)."""
    if proposed in (round(configured * FLOOR, 3), configured) or current <= 0:
        return proposed
    return proposed if abs(proposed - current) > HYSTERESIS * current else current


def fingerprint(node_keys: Sequence[str]) -> str:
    """The node list, in order, as a hash: servers compare it without the table holding any URL or password."""
    return hashlib.blake2b("\n".join(node_keys).encode(), digest_size=12).hexdigest()


@dataclass
class Table:
    version: int
    fingerprint: str
    names: list[str]  # the redacted node URLs, for operators
    configured: list[float]
    weights: list[float]  # the effective weights the ring uses
    overrides: dict[str, float] = field(default_factory=dict)  # node index (as text) -> pinned weight (0: drained)
    capacity: list[dict[str, float] | None] = field(default_factory=list)  # the samples the weights came from
    by: str = ""  # which server computed it (host:pid)
    at: float = 0.0  # when (Unix time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Table | None:
        """The table, or None for anything malformed (a hostile or broken value must not stop a server)."""
        try:
            raw = json.loads(text)
            table = cls(**raw)
        except (ValueError, TypeError):
            return None
        if not _well_formed(table):
            return None
        return table


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf")


def _well_formed(table: Table) -> bool:
    """Every field of the type it must have (the value is read from a backend anyone with access may write)."""
    lists = (table.names, table.configured, table.weights)
    if not isinstance(table.version, int) or not all(isinstance(x, list) for x in lists):
        return False
    if len({len(x) for x in lists}) != 1 or not all(isinstance(name, str) for name in table.names):
        return False
    if not all(_number(w) for w in (*table.weights, *table.configured)) or not any(table.weights):
        return False
    overrides = table.overrides
    if not isinstance(overrides, dict) or not all(_number(w) for w in overrides.values()):
        return False
    return isinstance(table.fingerprint, str) and isinstance(table.by, str) and _number(table.at)


def first_table(fp: str, names: Sequence[str], configured: Sequence[float], by: str, at: float) -> Table:
    return Table(0, fp, list(names), list(configured), list(configured), by=by, at=at)


def next_weights(
    table: Table, samples: Sequence[Capacity | None], overrides: Mapping[str, float] | None = None
) -> list[float]:
    """The weights the next table gets: overrides first, then each sampled node's damped measured weight;
    a node that could not be sampled keeps its weight."""
    pinned = table.overrides if overrides is None else overrides
    weights = []
    for i, (current, configured) in enumerate(zip(table.weights, table.configured, strict=True)):
        if str(i) in pinned:
            weights.append(pinned[str(i)])
        elif samples[i] is None:
            weights.append(current if str(i) not in table.overrides else configured)
        else:
            sample = samples[i]
            assert sample is not None
            weights.append(damped(current, measured_weight(configured, sample), configured))
    if not any(weights):  # every node drained or pinned at 0: keep the ring usable with the configured weights
        return list(table.configured)
    return weights


def capacity_view(sample: Capacity | None) -> dict[str, float] | None:
    if sample is None:
        return None
    return {"used": sample.used, "limit": sample.limit, "latency_ms": round(sample.latency_ms, 2)}


def describe(table: Table) -> dict[str, Any]:
    return asdict(table)
