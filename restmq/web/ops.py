"""Operational endpoints: liveness and readiness; and who sees which backend nodes."""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from restmq.core.store import Store
from restmq.errors import BackendUnavailable
from restmq.web.auth import Access
from restmq.web.shapes import Health, Ready


async def sees_addresses(conn: HTTPConnection) -> bool:
    access: Access = conn.app.state.access
    return await access.is_admin(conn)


def shown_nodes(store: Store, addresses: bool) -> dict[str, str]:
    """The backend nodes' states by (redacted) address, or by position only: "node1", "node2", ... in
    --redis order, for callers that are not admins (Access.is_admin)."""
    states = store.node_states()
    if addresses:
        return states
    return {f"node{i}": state for i, state in enumerate(states.values(), start=1)}


async def node_view(conn: HTTPConnection, store: Store) -> dict[str, str]:
    return shown_nodes(store, await sees_addresses(conn))


async def health(request: Request) -> Response:
    """The process is up (the backend is not asked)."""
    up: Health = {"status": "ok"}
    return JSONResponse(up)


async def ready(request: Request) -> Response:
    """The backend answers: ready to serve queues. Open to all, but only admins see node addresses."""
    store = request.app.state.service.store
    try:
        await store.ping()
    except BackendUnavailable as exc:
        admin = await sees_addresses(request)
        error = exc.message if admin else "the backend is unavailable"  # the message names the node
        down: Ready = {"status": "unavailable", "error": error, "nodes": shown_nodes(store, admin)}
        return JSONResponse(down, 503)
    answer: Ready = {"status": "ready", "nodes": await node_view(request, store)}
    return JSONResponse(answer)
