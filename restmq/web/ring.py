"""Admin routes of a consistent-hash ring (docs/scaling.md): GET /admin/ring shows each node's capacity, effective
weight, share of queues and messages and the placement version (`?queue=a&queue=b`: those queues' owners only); POST
/admin/ring/pin?node=NODE&weight=N, /drain?node=NODE and /unpin?node=NODE override the automatic weights (NODE:
the node's index or its redacted URL; a URL does not fit in a path segment). Admins only."""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol, TypedDict, runtime_checkable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from restmq.core.names import check_queue_name
from restmq.errors import Conflict, Forbidden, InvalidParameter, MissingField
from restmq.web.auth import Access

log = logging.getLogger("restmq.placement")


class OverrideQuery(TypedDict, total=False):
    node: str  # the node's index in the --redis list, or its URL as GET /admin/ring shows it (password ***)
    weight: float  # pin only: 0 to 1000


@runtime_checkable
class RingAdmin(Protocol):
    """What the ring's store offers operators (restmq/storage/ring_admin.py behind ShardedStore)."""

    async def ring_view(self) -> dict[str, Any]: ...

    async def ring_override(self, node: str, weight: float | None) -> dict[str, Any]: ...

    async def ring_reset(self) -> dict[str, Any]: ...

    async def owner(self, queue: str) -> int: ...

    def placement_version(self) -> int | None: ...


def ring_admin(store: object) -> RingAdmin | None:
    """The store's ring operations, when it is a consistent-hash ring (a single node or a cluster has none)."""
    return store if isinstance(store, RingAdmin) else None


async def _ring(request: Request) -> RingAdmin:
    access: Access = request.app.state.access
    if not await access.is_admin(request):
        raise Forbidden("the ring's placement is for admins (a token with the admin right)")
    ring: RingAdmin | None = getattr(request.app.state, "ring", None)
    if ring is None:
        raise Conflict("this server's backend is not a consistent-hash ring (give --redis more than once)")
    return ring


MAX_OWNER_QUERIES = 1000


async def show(request: Request) -> Response:
    """The ring's view; with `?queue=a&queue=b...` only those queues' owners (a lookup each, no backend call)."""
    ring = await _ring(request)
    queues = request.query_params.getlist("queue")
    if not queues:
        return JSONResponse(await ring.ring_view())
    if len(queues) > MAX_OWNER_QUERIES:
        raise InvalidParameter(f"at most {MAX_OWNER_QUERIES} queue= parameters")
    for queue in queues:
        check_queue_name(queue)
    owners = {queue: await ring.owner(queue) for queue in queues}
    return JSONResponse({"placement_version": ring.placement_version(), "owners": owners})


def _weight(request: Request) -> float:
    text = request.query_params.get("weight")
    if text is None:
        raise MissingField("missing parameter 'weight' (a number from 0 to 1000)")
    try:
        weight = float(text)
    except ValueError:
        raise InvalidParameter("weight must be a number from 0 to 1000") from None
    if not math.isfinite(weight) or not 0 <= weight <= 1000:
        raise InvalidParameter("weight must be a number from 0 to 1000")
    return weight


async def override(request: Request) -> Response:
    ring = await _ring(request)
    node, action = request.query_params.get("node"), request.url.path.rsplit("/", 1)[-1]
    if node is None:
        raise MissingField("missing parameter 'node' (its index, or its URL as GET /admin/ring shows it)")
    if action not in ("pin", "drain", "unpin"):
        raise InvalidParameter("the action is pin, drain or unpin")
    weight = _weight(request) if action == "pin" else 0.0 if action == "drain" else None
    view = await ring.ring_override(node, weight)
    client = request.client.host if request.client else "?"
    log.warning("ring %s of node %s (weight %s) by an admin from %s", action, node[:200], weight, client)
    return JSONResponse(view)


async def reset(request: Request) -> Response:
    """A new placement table for this server's node list, replacing one written for another list."""
    ring = await _ring(request)
    view = await ring.ring_reset()
    client = request.client.host if request.client else "?"
    log.warning("ring placement reset to this server's node list by an admin from %s", client)
    return JSONResponse(view)
