"""HashRing (restmq.storage.ring) and the ring's merges (restmq.storage.sharded): pure, no sockets."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restmq.core.model import FlowStatus, Policy, QueueSettings, QueueStats
from restmq.storage.ring import POINTS_PER_WEIGHT, HashRing, point
from restmq.storage.sharded import merge_pages, merge_stats

pytestmark = pytest.mark.unit

NODES = ["redis://a:6379/0", "redis://b:6379/0", "redis://c:6379/0"]
KEYS = [f"queue-{i}" for i in range(20_000)]

queue_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:@", min_size=1)
node_sets = st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=6, unique=True)


def owner(ring: HashRing, key: str) -> str:
    """The node a key belongs to, as ShardedStore finds it: the first of its walk."""
    return next(ring.walk(key))


@given(key=queue_names, names=node_sets)
@settings(max_examples=200, deadline=None, database=None)
def test_owner_is_deterministic(key: str, names: list[str]) -> None:
    ring = HashRing({name: 1 for name in names})
    again = HashRing({name: 1 for name in reversed(names)})  # the order nodes are given in does not matter
    assert owner(ring, key) == owner(ring, key) == owner(again, key)
    assert owner(ring, key) in names


@given(key=queue_names, names=node_sets, weights=st.lists(st.integers(1, 4), min_size=6, max_size=6))
@settings(max_examples=200, deadline=None, database=None)
def test_walk_visits_every_node_once_starting_at_the_owner(key: str, names: list[str], weights: list[int]) -> None:
    nodes = {name: weights[i] for i, name in enumerate(names)}
    walk = list(HashRing(nodes).walk(key))
    # the ketama rule, by brute force: the node owning the first point at or after the key's hash, wrapping around
    points = sorted(
        (point(f"{name}-{i}"), name) for name, weight in nodes.items() for i in range(POINTS_PER_WEIGHT * weight)
    )
    assert walk[0] == next((name for at, name in points if at >= point(key)), points[0][1])
    assert sorted(walk) == sorted(names)


def test_adding_a_fourth_node_moves_about_a_quarter_of_the_keys_all_to_it() -> None:
    before = HashRing({name: 1 for name in NODES})
    after = HashRing({name: 1 for name in [*NODES, "redis://d:6379/0"]})
    moved = [key for key in KEYS if owner(before, key) != owner(after, key)]
    assert 0.20 * len(KEYS) <= len(moved) <= 0.30 * len(KEYS), len(moved) / len(KEYS)
    assert {owner(after, key) for key in moved} == {"redis://d:6379/0"}  # nothing moves between old nodes
    # and the old owner comes right after the new one on the walk: readers drain it next
    assert all(list(after.walk(key))[1] == owner(before, key) for key in moved[:500])


def test_removing_a_node_moves_only_its_keys() -> None:
    before = HashRing({name: 1 for name in NODES})
    after = HashRing({name: 1 for name in NODES[:2]})
    for key in KEYS[:5000]:
        if owner(before, key) != NODES[2]:
            assert owner(after, key) == owner(before, key)
        else:  # a dead node's keys go to the next node on its walk: the fallback ShardedStore uses
            assert owner(after, key) == list(before.walk(key))[1]


def test_weights_give_proportional_shares() -> None:
    ring = HashRing({NODES[0]: 1, NODES[1]: 2, NODES[2]: 1})
    shares = collections.Counter(owner(ring, key) for key in KEYS)
    for name, expected in ((NODES[0], 0.25), (NODES[1], 0.50), (NODES[2], 0.25)):
        assert abs(shares[name] / len(KEYS) - expected) < 0.04, {n: c / len(KEYS) for n, c in shares.items()}


def test_points_per_weight_unit() -> None:
    ring = HashRing({NODES[0]: 1, NODES[1]: 3})
    assert len(ring._hashes) == POINTS_PER_WEIGHT * 4


@pytest.mark.parametrize("weights", [{}, {"a": 0}, {"a": 1, "b": -1}])
def test_bad_rings_are_refused(weights: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        HashRing(weights)


@given(
    pages=st.lists(st.lists(queue_names, max_size=30, unique=True).map(sorted), min_size=1, max_size=4),
    limit=st.integers(1, 40),
)
@settings(max_examples=300, deadline=None, database=None)
def test_merged_listing_pages_are_the_first_distinct_names_in_order(pages: list[list[str]], limit: int) -> None:
    """Issue 13: the ring's listing page is each node's page merged; a queue listed on two nodes shows once."""
    assert merge_pages(pages, limit) == sorted({name for page in pages for name in page})[:limit]


def test_a_queues_stats_over_ring_nodes_add_up_with_its_homes_settings() -> None:
    counters = {"added": 3, "delivered": 2, "acked": 1, "redelivered": 0, "expired": 0, "dead_lettered": 0}
    home = QueueStats("q", 1, 2, 3, 4, 2, QueueSettings(Policy.ROUNDROBIN, FlowStatus.STOP, 5), counters)
    fallback = QueueStats("q", 10, 20, 30, 40, 2, QueueSettings(), {name: 1 for name in counters})
    merged = merge_stats("q", [fallback, home], home)
    assert (merged.length, merged.delayed, merged.leased, merged.dead) == (11, 22, 33, 44)
    assert merged.consumers == 2  # consumers register on every node: counted once
    assert merged.settings == home.settings
    assert merged.counters == {name: value + 1 for name, value in counters.items()}
    assert merge_stats("q", [fallback, home], None).settings == fallback.settings  # the home did not answer


def test_a_queue_no_node_answered_for_has_empty_stats() -> None:
    empty = merge_stats("q", [], None)
    assert (empty.length, empty.consumers, empty.settings) == (0, 0, QueueSettings())
    assert set(empty.counters.values()) == {0} and "dead_lettered" in empty.counters
