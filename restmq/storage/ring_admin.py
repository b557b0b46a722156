"""What operators see of a ring and how they steer it (`restmq ring`, GET/POST /admin/ring...): each node's
capacity, effective weight, share of queues and messages, the placement version, and the overrides."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from restmq.errors import BackendUnavailable, Conflict, NotFound
from restmq.storage.placement import FLOOR, HYSTERESIS, capacity_view
from restmq.storage.placement_keeper import sample
from restmq.storage.ring import points_of

if TYPE_CHECKING:
    from restmq.storage.sharded import Node, ShardedStore

MESSAGE_COUNT_QUEUES = 2000  # queues per node whose messages `restmq ring` counts (the rest: "messages_partial")


def resolve_node(nodes: Sequence[Node], text: str) -> Node:
    """NODE as operators give it: its index in the --redis list, or its redacted URL as `restmq ring` shows it."""
    text = text.strip()
    if text.isdigit() and int(text) < len(nodes):
        return nodes[int(text)]
    for node in nodes:
        if node.name == text:
            return node
    raise NotFound(
        f"no ring node {text[:200]!r}: give its index (0..{len(nodes) - 1}) or its URL as `restmq ring` shows it"
    )


async def _counts(node: Node) -> dict[str, Any]:
    """Queues in the node's registry and messages stored there (waiting, delayed, leased)."""
    names = await node.store.list_queues()
    counted = names[:MESSAGE_COUNT_QUEUES]
    rows = await node.store.stats(counted) if counted else []
    messages = sum(r.length + r.delayed + r.leased for r in rows)
    return {"queues": len(names), "messages": messages, "messages_partial": len(names) > len(counted)}


async def ring_view(store: ShardedStore) -> dict[str, Any]:
    keeper = store.placement
    table = keeper.table if keeper is not None else None
    weights = table.weights if table is not None else [float(node.weight) for node in store.nodes]
    points = [points_of(w) for w in weights]
    rows = []
    for node, weight, count in zip(store.nodes, weights, points, strict=True):
        row: dict[str, Any] = {
            "index": node.index,
            "node": node.name,
            "state": "up" if node.healthy else "down",
            "configured": float(node.weight),
            "weight": weight,
            "override": table.overrides.get(str(node.index)) if table is not None else None,
            "ring_share": round(count / sum(points), 4),
            "capacity": None,
            "queues": None,
            "messages": None,
        }
        with contextlib.suppress(BackendUnavailable):
            row["capacity"] = capacity_view(await sample(node.store))
            row.update(await _counts(node))
        rows.append(row)
    return {
        "placement": "static" if keeper is None else "capacity",
        "version": table.version if table is not None else None,
        "computed_by": table.by if table is not None else None,
        "computed_at": table.at if table is not None else None,
        "interval": keeper.interval if keeper is not None else None,
        "floor": FLOOR,
        "hysteresis": HYSTERESIS,
        "conflict": keeper.conflict if keeper is not None else None,
        "nodes": rows,
    }


STATIC = (
    "ring placement is static: overrides need every server started with --ring-placement capacity "
    "(with static placement, change ?weight=N in the --redis list of every server)"
)


async def ring_reset(store: ShardedStore) -> dict[str, Any]:
    if store.placement is None:
        raise Conflict(STATIC)
    await store.placement.reset()
    return await ring_view(store)


async def ring_override(store: ShardedStore, node_text: str, weight: float | None) -> dict[str, Any]:
    if store.placement is None:
        raise Conflict(STATIC)
    node = resolve_node(store.nodes, node_text)
    await store.placement.override(node.index, weight)
    return await ring_view(store)
