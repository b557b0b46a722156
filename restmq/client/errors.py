"""Errors the client raises: one family under :class:`ClientError`, itself a :class:`restmq.errors.RestMQError`.

Every error has ``code`` (a stable UPPER_SNAKE string) and ``status`` (the HTTP status, or 0 when no
HTTP answer arrived). Server errors keep the server's own ``code`` (see docs/semantics.md), so
``except LeaseExpired`` and ``if exc.code == "LEASE_EXPIRED"`` mean the same thing.

    ClientError
    ├── TransportError        no HTTP answer: status 0
    │   ├── ConnectionFailed  the server cannot be reached (refused, DNS, connect timeout)
    │   └── RequestTimeout    connected, but no answer in time
    └── APIError              the server answered with an error status
        ├── BadRequestError (400)        QUEUE_NAME_INVALID, PARAMETER_INVALID, ...
        ├── AuthError (401, 403)         UNAUTHORIZED, TOKEN_INVALID, FORBIDDEN
        ├── NotFoundError (404)
        │   └── MessageNotFound          MESSAGE_NOT_FOUND
        ├── ConflictError (409)
        │   ├── LeaseExpired             LEASE_EXPIRED
        │   └── LeaseStale               LEASE_STALE
        ├── PayloadTooLargeError (413)
        ├── BackendUnavailableError (503) BACKEND_UNAVAILABLE, TOO_MANY_STREAMS
        └── ServerError (other 5xx)
    (any other status: APIError itself)

This module imports nothing from the server.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from restmq import errors as _server


class ClientError(_server.RestMQError):
    """Base of everything the client raises on purpose."""

    code = "CLIENT_ERROR"
    status = 0


class TransportError(ClientError):
    """No HTTP answer: the connection failed, broke, or timed out."""

    code = "TRANSPORT_ERROR"


class ConnectionFailed(TransportError):
    """The server could not be reached at all (nothing was sent)."""

    code = "CONNECTION_FAILED"


class RequestTimeout(TransportError):
    """The request was sent but no answer came within the timeout (it may or may not have been applied)."""

    code = "TIMEOUT"


class APIError(ClientError):
    """The server answered with an error status; ``code`` and ``message`` are the server's.

    ``body`` holds the decoded JSON error body (or ``{}`` when the body was not JSON).
    """

    code = "HTTP_ERROR"

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.body: dict[str, Any] = body or {}

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, HTTP {self.status})"


class BadRequestError(APIError, _server.BadRequest):
    code = "BAD_REQUEST"
    status = 400


class AuthError(APIError):
    """401 (no or a bad token: ``UNAUTHORIZED``, ``TOKEN_INVALID``) or 403 (``FORBIDDEN``: no such right)."""

    code = "UNAUTHORIZED"
    status = 401


class NotFoundError(APIError, _server.NotFound):
    code = "NOT_FOUND"
    status = 404


class MessageNotFound(NotFoundError):
    """No such message: it was acked, deleted or expired (or never added)."""

    code = "MESSAGE_NOT_FOUND"


class ConflictError(APIError, _server.Conflict):
    code = "CONFLICT"
    status = 409


class LeaseExpired(ConflictError):
    """The lease ran out before it was settled; the message went back to the queue."""

    code = "LEASE_EXPIRED"


class LeaseStale(ConflictError):
    """The message was delivered again since this delivery; the new delivery is untouched."""

    code = "LEASE_STALE"


class PayloadTooLargeError(APIError, _server.PayloadTooLarge):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class BackendUnavailableError(APIError, _server.BackendUnavailable):
    """The server is up but its Redis/Valkey backend is not (retry later)."""

    code = "BACKEND_UNAVAILABLE"
    status = 503


class ServerError(APIError):
    code = "INTERNAL"
    status = 500


_BY_CODE: dict[str, type[APIError]] = {
    "MESSAGE_NOT_FOUND": MessageNotFound,
    "LEASE_EXPIRED": LeaseExpired,
    "LEASE_STALE": LeaseStale,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    503: BackendUnavailableError,
}


def error_class(status: int, code: str | None) -> type[APIError]:
    """The exception class for an error answer: by the server's code first, then by status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return APIError


def api_error(status: int, body: bytes, reason: str = "") -> APIError:
    """Build the APIError for an HTTP error answer (``body`` is the raw response body)."""
    data: dict[str, Any] = {}
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        data = decoded
    message = str(data.get("error") or body.decode("utf-8", "replace").strip()[:200] or reason or f"HTTP {status}")
    raw_code = data.get("code")
    code = raw_code if isinstance(raw_code, str) and raw_code else f"HTTP_{status}"
    return error_class(status, code)(message, code=code, status=status, body=data)


def from_response(response: httpx.Response) -> APIError:
    """The APIError for an (already read) httpx response with an error status."""
    return api_error(response.status_code, response.content, response.reason_phrase)


def from_transport(exc: httpx.TransportError, url: str) -> TransportError:
    """Wrap an httpx transport failure."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
        return ConnectionFailed(f"cannot connect to RestMQ at {url}: {reason}")
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"RestMQ at {url} did not answer in time ({type(exc).__name__})")
    return TransportError(f"connection to RestMQ at {url} failed: {reason}")
