"""A ketama-style consistent-hash ring: pure functions, no I/O.

Each node gets `round(160 * weight)` points at blake2b-64 hashes of "<name>-<i>"; a key belongs to the
node owning the first point at or after the key's hash (wrapping around). Adding a node only
takes keys from the others (about weight/total of them); keys never move between old nodes.
Weights may be fractions (capacity placement, docs/scaling.md): changing one node's weight adds or
removes only that node's own points, so only keys whose owner is that node, or becomes it, move.
A node of weight 0 (drained) has no point: it owns no key and comes last in every walk.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator, Mapping

POINTS_PER_WEIGHT = 160


def point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def points_of(weight: float) -> int:
    """How many ring points a weight gives (at least one for any weight above 0)."""
    return max(1, round(POINTS_PER_WEIGHT * weight)) if weight > 0 else 0


class HashRing:
    def __init__(self, weights: Mapping[str, float]) -> None:
        if not weights:
            raise ValueError("a ring needs at least one node")
        if any(weight < 0 for weight in weights.values()):
            raise ValueError("node weights must be 0 or more")
        counts = {name: points_of(weight) for name, weight in weights.items()}
        if not any(counts.values()):
            raise ValueError("at least one node must have a weight above 0")
        points = sorted((point(f"{name}-{i}"), name) for name, count in counts.items() for i in range(count))
        self._hashes = [h for h, _ in points]
        self._names = [name for _, name in points]
        self.nodes = list(weights)
        self._pointless = [name for name, count in counts.items() if count == 0]

    def walk(self, key: str) -> Iterator[str]:
        """Every node once, in ring order from the key's owner: the owner, then its fallbacks."""
        seen: set[str] = set()
        start = self._index(key)
        for offset in range(len(self._names)):
            name = self._names[(start + offset) % len(self._names)]
            if name not in seen:
                seen.add(name)
                yield name
                if len(seen) == len(self.nodes) - len(self._pointless):
                    break
        yield from self._pointless

    def _index(self, key: str) -> int:
        index = bisect.bisect_left(self._hashes, point(key))
        return index if index < len(self._hashes) else 0
