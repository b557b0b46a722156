"""Translate redis-py failures into RestMQ errors at the storage boundary.

Every failure of the backend itself, as opposed to a fault in what we asked of it, is BackendUnavailable
(503 with Retry-After): it cannot be reached, timed out, or refuses for now. Anything else (a script
error, a key of the wrong type) stays what it is: an unexpected error, a 500.
"""

from __future__ import annotations

from types import TracebackType

from redis import exceptions as rexc

from restmq.core.deadline import bounded
from restmq.errors import BackendUnavailable

# BusyLoadingError (LOADING) and MaxConnectionsError are ConnectionErrors
_UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.SlotNotCoveredError, OSError)
# What redis-py raises for some refusals by itself, with no reply to read the code from
_REFUSING = (rexc.ClusterDownError, rexc.TryAgainError, rexc.OutOfMemoryError, rexc.ReadOnlyError)
_UNAVAILABLE = _UNREACHABLE + _REFUSING
# Error replies of a server that refuses for now: a full disk (MISCONF), maxmemory (OOM), a script running
# too long (BUSY), still loading its data (LOADING), a replica (READONLY), a replica without its master
# (MASTERDOWN), a replica quorum missing (NOREPLICAS), a cluster without all its slots (CLUSTERDOWN) or
# in the middle of moving a slot (TRYAGAIN).
REFUSALS = frozenset(
    {"MISCONF", "OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "NOREPLICAS", "CLUSTERDOWN", "TRYAGAIN"}
)
_PIPELINE_PREFIX = "caused error: "  # redis-py's annotation of a failed pipeline command


def error_code(exc: rexc.ResponseError) -> str:
    """The error reply's code (its first word). redis-py strips the codes it knows from the text and keeps them
    in status_code; a failed pipeline command's text is prefixed with the command."""
    if exc.status_code:
        return exc.status_code
    text = str(exc)
    cut = text.find(_PIPELINE_PREFIX)
    if cut >= 0:
        text = text[cut + len(_PIPELINE_PREFIX) :].lstrip("('\"")
    return text.split(" ", 1)[0]


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the backend cannot serve now (rather than that the request or our code is wrong)."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, rexc.ResponseError) and error_code(exc) in REFUSALS


class backend_errors(bounded):  # lower case: used like a function, `with backend_errors(node):`
    """Raise BackendUnavailable for a backend that cannot be reached, refuses for now, or has not answered
    by the deadline of the request being served (restmq.core.deadline)."""

    __slots__ = ()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        super().__exit__(kind, exc, tb)  # the deadline first: it may have caused the failure
        if exc is None or not unavailable(exc):
            return
        code = error_code(exc) if isinstance(exc, rexc.ResponseError) else getattr(exc, "status_code", "") or ""
        kind_of = "refused" if code else "unavailable"
        text = f"{code} {exc}" if code and not str(exc).startswith(code) else str(exc)
        raise BackendUnavailable(f"backend {self.node} {kind_of}: {text or type(exc).__name__}") from exc
