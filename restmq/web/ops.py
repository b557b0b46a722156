"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from restmq.errors import BackendUnavailable


async def health(request: Request) -> Response:
    """The process is up (it does not ask the backend)."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """The backend answers: ready to serve queues."""
    store = request.app.state.service.store
    try:
        await store.ping()
    except BackendUnavailable as exc:
        return JSONResponse(
            {"status": "unavailable", "error": exc.message, "nodes": store.node_states()}, status_code=503
        )
    return JSONResponse({"status": "ready", "nodes": store.node_states()})
