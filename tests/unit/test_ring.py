"""HashRing (restmq.storage.ring): pure consistent hashing, no sockets."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restmq.storage.ring import POINTS_PER_WEIGHT, HashRing
from restmq.storage.sharded import merge_pages

pytestmark = pytest.mark.unit

NODES = ["redis://a:6379/0", "redis://b:6379/0", "redis://c:6379/0"]
KEYS = [f"queue-{i}" for i in range(20_000)]

queue_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:@", min_size=1)
node_sets = st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=6, unique=True)


@given(key=queue_names, names=node_sets)
@settings(max_examples=200, deadline=None, database=None)
def test_owner_is_deterministic(key: str, names: list[str]) -> None:
    ring = HashRing({name: 1 for name in names})
    again = HashRing({name: 1 for name in reversed(names)})  # the order nodes are given in does not matter
    assert ring.owner(key) == ring.owner(key) == again.owner(key)
    assert ring.owner(key) in names


@given(key=queue_names, names=node_sets, weights=st.lists(st.integers(1, 4), min_size=6, max_size=6))
@settings(max_examples=200, deadline=None, database=None)
def test_walk_visits_every_node_once_starting_at_the_owner(key: str, names: list[str], weights: list[int]) -> None:
    ring = HashRing({name: weights[i] for i, name in enumerate(names)})
    walk = list(ring.walk(key))
    assert walk[0] == ring.owner(key)
    assert sorted(walk) == sorted(names)


def test_adding_a_fourth_node_moves_about_a_quarter_of_the_keys_all_to_it() -> None:
    before = HashRing({name: 1 for name in NODES})
    after = HashRing({name: 1 for name in [*NODES, "redis://d:6379/0"]})
    moved = [key for key in KEYS if before.owner(key) != after.owner(key)]
    assert 0.20 * len(KEYS) <= len(moved) <= 0.30 * len(KEYS), len(moved) / len(KEYS)
    assert {after.owner(key) for key in moved} == {"redis://d:6379/0"}  # nothing moves between old nodes
    # and the old owner comes right after the new one on the walk: readers drain it next
    assert all(list(after.walk(key))[1] == before.owner(key) for key in moved[:500])


def test_removing_a_node_moves_only_its_keys() -> None:
    before = HashRing({name: 1 for name in NODES})
    after = HashRing({name: 1 for name in NODES[:2]})
    for key in KEYS[:5000]:
        if before.owner(key) != NODES[2]:
            assert after.owner(key) == before.owner(key)
        else:  # a dead node's keys go to the next node on its walk: the fallback ShardedStore uses
            assert after.owner(key) == list(before.walk(key))[1]


def test_weights_give_proportional_shares() -> None:
    ring = HashRing({NODES[0]: 1, NODES[1]: 2, NODES[2]: 1})
    shares = collections.Counter(ring.owner(key) for key in KEYS)
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
