"""Translate redis-py failures into RestMQ errors at the storage boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as rexc

from restmq.errors import BackendUnavailable

_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError, OSError)


@contextmanager
def backend_errors(node: str) -> Iterator[None]:
    """Raise BackendUnavailable for a backend that cannot be reached or is not ready yet."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise BackendUnavailable(f"backend {node} unavailable: {exc or type(exc).__name__}") from exc
    except rexc.ResponseError as exc:
        text = str(exc)
        if text.startswith(("OOM", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "LOADING")):
            raise BackendUnavailable(f"backend {node} refused: {text}") from exc
        raise
