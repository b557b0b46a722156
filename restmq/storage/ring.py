"""A ketama-style consistent-hash ring: pure functions, no I/O.

Each node gets `160 * weight` points at blake2b-64 hashes of "<name>-<i>"; a key belongs to the
node owning the first point at or after the key's hash (wrapping around). Adding a node only
takes keys from the others (about weight/total of them); keys never move between old nodes.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator, Mapping

POINTS_PER_WEIGHT = 160


def point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    def __init__(self, weights: Mapping[str, int]) -> None:
        if not weights:
            raise ValueError("a ring needs at least one node")
        if any(weight < 1 for weight in weights.values()):
            raise ValueError("node weights must be 1 or more")
        points = sorted(
            (point(f"{name}-{i}"), name) for name, weight in weights.items() for i in range(POINTS_PER_WEIGHT * weight)
        )
        self._hashes = [h for h, _ in points]
        self._names = [name for _, name in points]
        self.nodes = list(weights)

    def walk(self, key: str) -> Iterator[str]:
        """Every node once, in ring order from the key's owner: the owner, then its fallbacks."""
        seen: set[str] = set()
        start = self._index(key)
        for offset in range(len(self._names)):
            name = self._names[(start + offset) % len(self._names)]
            if name not in seen:
                seen.add(name)
                yield name
                if len(seen) == len(self.nodes):
                    return

    def _index(self, key: str) -> int:
        index = bisect.bisect_left(self._hashes, point(key))
        return index if index < len(self._hashes) else 0
