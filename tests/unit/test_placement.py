"""The placement formula and its damping (restmq/storage/placement.py), and weights of 0 on the ring."""

from __future__ import annotations

import json

import pytest

from restmq.storage.placement import FLOOR, Capacity, Table, damped, first_table, measured_weight, next_weights
from restmq.storage.ring import HashRing

pytestmark = pytest.mark.unit

MIB = 2**20


def test_a_node_with_room_keeps_its_configured_weight() -> None:
    assert measured_weight(2, Capacity(10 * MIB, 100 * MIB, 0.3)) == 2


def test_the_weight_falls_with_the_free_memory_to_the_floor() -> None:
    half = measured_weight(1, Capacity(70 * MIB, 100 * MIB, 0.3))  # 30 % free: halfway between 50 % and 10 %
    assert half == 0.5
    assert measured_weight(1, Capacity(95 * MIB, 100 * MIB, 0.3)) == FLOOR
    assert measured_weight(1, Capacity(200 * MIB, 100 * MIB, 0.3)) == FLOOR  # over the limit: never 0


def test_a_slow_node_gets_less() -> None:
    assert measured_weight(1, Capacity(0, 100 * MIB, 200.0)) == 0.1


def test_small_changes_are_ignored() -> None:
    assert damped(1.0, 0.9, 1.0) == 1.0
    assert damped(1.0, 0.8, 1.0) == 0.8
    assert damped(0.5, 1.0, 1.0) == 1.0  # back to full weight at once


def test_overrides_win_and_unsampled_nodes_keep_their_weight() -> None:
    table = first_table("fp", ["a", "b", "c"], [1.0, 1.0, 1.0], "me", 0.0)
    table.overrides = {"1": 0.0}
    full = Capacity(96 * MIB, 100 * MIB, 0.3)
    assert next_weights(table, [full, Capacity(0, 100, 0.1), None]) == [FLOOR, 0.0, 1.0]


def test_a_malformed_table_is_refused() -> None:
    assert Table.from_json("{") is None
    assert Table.from_json('{"version": 1}') is None
    good = first_table("fp", ["a"], [1.0], "me", 0.0)
    assert Table.from_json(good.to_json()) == good
    for field, value in [
        ("weights", [-1]),
        ("weights", [0]),
        ("names", [1]),
        ("overrides", {"0": "x"}),
        ("version", "1"),
        ("by", None),
        ("weights", [float("inf")]),
        ("configured", {}),
    ]:
        raw = json.loads(good.to_json())
        raw[field] = value
        assert Table.from_json(json.dumps(raw)) is None, raw


def test_a_drained_node_owns_nothing_but_is_walked_last() -> None:
    ring = HashRing({"a": 1, "b": 0, "c": 1})
    for i in range(500):
        walk = list(ring.walk(f"q{i}"))
        assert walk[0] != "b" and walk[-1] == "b" and sorted(walk) == ["a", "b", "c"]


def test_a_weight_change_moves_only_the_changed_nodes_keys() -> None:
    before = HashRing({"a": 1, "b": 1, "c": 1})
    after = HashRing({"a": 1, "b": 0.3, "c": 1})
    for i in range(2000):
        old, new = next(before.walk(f"q{i}")), next(after.walk(f"q{i}"))
        assert old == new or old == "b", (old, new)
