"""The capacity model of docs/capacity.md: requests/s a deployment can serve, from the CPU each request costs.

A request costs `server` µs of CPU in a server process (one Python thread: at most one core each), `engine` µs in
the engine node that holds its queue (one thread for commands: at most one core per node) and `client` µs in
whatever sends the load. The rate is the lowest of three bounds:

- server processes: workers × 10⁶ / server µs;
- engine: 10⁶ / (engine µs × the busiest node's share of the requests);
- cores: the cores left to all of them × 10⁶ / (server + engine + client µs) — on a benchmark machine where the
  load generator, the servers and the engines share the same few cores, this is the one that binds first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from restmq.storage import keys
from restmq.storage.ring import HashRing


@dataclass(frozen=True)
class Costs:
    """CPU µs per request."""

    server: float
    engine: float
    client: float = 0.0


@dataclass(frozen=True)
class Deployment:
    workers: int  # server processes
    busiest_share: float  # share of the requests the busiest engine node serves (1/k for k even nodes)
    cores: float  # cores free for the servers, the engines and the load generator (inf: a core for each)


def bounds(costs: Costs, deployment: Deployment) -> dict[str, float]:
    """Requests/s each resource allows."""
    return {
        "server": deployment.workers * 1e6 / costs.server,
        "engine": 1e6 / (costs.engine * deployment.busiest_share),
        "cores": deployment.cores * 1e6 / (costs.server + costs.engine + costs.client),
    }


def predict(costs: Costs, deployment: Deployment) -> tuple[float, str]:
    """The rate the deployment can serve and the resource that sets it."""
    found = bounds(costs, deployment)
    binding = min(found, key=lambda name: found[name])
    return found[binding], binding


def busiest_share(nodes: list[str], queues: Iterable[str]) -> float:
    """The share of `queues` (picked uniformly by the load) that the ring puts on its busiest node."""
    if len(nodes) == 1:
        return 1.0
    ring = HashRing(dict.fromkeys(nodes, 1))
    owners = Counter(next(ring.walk(keys.hash_tag(queue))) for queue in queues)
    return max(owners.values()) / sum(owners.values())
