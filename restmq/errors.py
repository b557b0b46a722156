"""The RestMQError family: one stable UPPER_SNAKE code per failure, the same on every transport."""

from __future__ import annotations


class RestMQError(Exception):
    """Base error. `code` is stable and machine-readable; `status` is the HTTP status it maps to."""

    code = "INTERNAL"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


class BadRequest(RestMQError):
    code = "BAD_REQUEST"
    status = 400


class InvalidQueueName(BadRequest):
    code = "QUEUE_NAME_INVALID"


class InvalidCallback(BadRequest):
    code = "CALLBACK_INVALID"


class InvalidValue(BadRequest):
    code = "VALUE_INVALID"


class InvalidJSON(BadRequest):
    code = "JSON_INVALID"


class MissingField(BadRequest):
    code = "FIELD_MISSING"


class InvalidParameter(BadRequest):
    code = "PARAMETER_INVALID"


class InvalidForwarded(BadRequest):
    """A trusted proxy's X-Forwarded-For or X-Forwarded-Proto that cannot be parsed."""

    code = "FORWARDED_INVALID"


class NotFound(RestMQError):
    code = "NOT_FOUND"
    status = 404


class Conflict(RestMQError):
    code = "CONFLICT"
    status = 409


class PayloadTooLarge(RestMQError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class BackendUnavailable(RestMQError):
    code = "BACKEND_UNAVAILABLE"
    status = 503


class DeadlinePassed(BackendUnavailable):
    """The request's --backend-timeout ran out before a backend call could start: no backend is to blame."""


class RingIncomplete(RestMQError):
    """A write that must reach every ring node (a token's creation or revocation) missed some."""

    code = "RING_INCOMPLETE"
    status = 503


class EngineError(RuntimeError):
    """The embedded engine could not be started or stopped (not an HTTP error: a start-up failure)."""


class Unauthorized(RestMQError):
    code = "UNAUTHORIZED"
    status = 401
    challenge = 'Bearer realm="restmq"'  # WWW-Authenticate; Basic only where acl.conf asks for it


class Forbidden(RestMQError):
    code = "FORBIDDEN"
    status = 403


class TooManyStreams(RestMQError):
    code = "TOO_MANY_STREAMS"
    status = 503


class RequestTimeout(RestMQError):
    code = "REQUEST_TIMEOUT"
    status = 408


class JsonpDisabled(BadRequest):
    code = "JSONP_DISABLED"


class CrossSiteRequest(Forbidden):
    code = "CROSS_SITE_REQUEST"


class HostNotAllowed(RestMQError):
    code = "HOST_NOT_ALLOWED"
    status = 421  # Misdirected Request: this server does not answer for that name


class PushDisabled(RestMQError):
    code = "PUSH_DISABLED"
    status = 403


class PushTargetNotAllowed(BadRequest):
    code = "PUSH_TARGET_NOT_ALLOWED"
