"""AWS Signature Version 4 as SQS clients sign requests: parse the claim, rebuild the canonical request,
compare in constant time. Pure: no I/O, no clock (callers pass `now`).

Two forms carry a signature: the `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
Signature=...` header (with `X-Amz-Date`), and a presigned URL's query (`X-Amz-Algorithm`,
`X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`).
The canonical request follows AWS's documentation and botocore's signer (the tests sign with it):
repeated slashes removed from the path (dot segments refused), which is then percent-encoded once more;
query pairs decoded and re-encoded (RFC 3986 unreserved characters kept), sorted; signed headers
lower-cased with their values trimmed and inner whitespace collapsed; the SHA-256 of the body.
Errors carry the codes AWS answers (IncompleteSignature, SignatureDoesNotMatch, RequestExpired).
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sqs"
TERMINATOR = "aws4_request"
MAX_SKEW = 15 * 60  # seconds a signature's time may differ from ours, as AWS allows
MAX_PRESIGNED = 7 * 24 * 3600  # the longest X-Amz-Expires AWS accepts
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_TIMESTAMP = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z", re.ASCII)  # X-Amz-Date: 20261202T120000Z
_QUERY_KEYS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")


class SignatureError(Exception):
    """A request whose signature cannot be accepted: `code` is the one AWS answers, `status` its HTTP status."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _incomplete(message: str) -> SignatureError:
    return SignatureError("IncompleteSignature", message, 400)


def _mismatch(message: str) -> SignatureError:
    return SignatureError("SignatureDoesNotMatch", message)


@dataclass(frozen=True)
class HttpRequest:
    """A request as it arrived: `raw_path` and `query` still percent-encoded, header names in any case."""

    method: str
    raw_path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        """Every value of the header `name` (lower-case), in the order sent."""
        return self._by_name.get(name, [])

    @functools.cached_property
    def _by_name(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for key, value in self.headers:
            found.setdefault(key.lower(), []).append(value)
        return found


@dataclass(frozen=True)
class Claim:
    """What a request says about its own signature."""

    access_key: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # X-Amz-Date, YYYYMMDDTHHMMSSZ
    expires: int | None  # presigned URLs only
    signed_at: float = 0.0  # the timestamp as unix time

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


def parse(request: HttpRequest) -> Claim | None:
    """The request's signature claim; None if it carries none (no AWS4 Authorization, no X-Amz-Signature)."""
    authorization = request.header("authorization")
    pairs = query_pairs(request.query)
    presigned = any(key == "X-Amz-Signature" for key, _ in pairs)
    signed = bool(authorization) and authorization[0].lstrip().startswith("AWS4")
    if signed and presigned:
        raise _incomplete("only one authentication mechanism is allowed: the Authorization header or the query")
    if signed:
        if len(authorization) > 1:
            raise _incomplete("more than one Authorization header")
        return _from_header(authorization[0].strip(), request)
    if presigned:
        names = [key for key, _ in pairs if key.startswith("X-Amz-")]
        if len(names) != len(set(names)):
            raise _incomplete("a presigned URL names each X-Amz-* parameter once")
        return _from_query(dict(pairs))
    return None


def _from_header(header: str, request: HttpRequest) -> Claim:
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"unsupported algorithm {algorithm[:40]!r}: only {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name in fields:
            raise _incomplete("the Authorization header must be Credential=..., SignedHeaders=..., Signature=...")
        fields[name] = value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise _incomplete(f"the Authorization header lacks {', '.join(missing)}")
    dates = request.header("x-amz-date")
    if len(dates) != 1:
        raise _incomplete("a signed request needs exactly one X-Amz-Date header")
    return _claim(fields["Credential"], fields["SignedHeaders"], fields["Signature"], dates[0].strip(), None)


def _from_query(params: dict[str, str]) -> Claim:
    missing = [key for key in _QUERY_KEYS if not params.get(key)]
    if missing or "X-Amz-Expires" not in params:
        raise _incomplete(f"a presigned URL needs {', '.join(missing or ['X-Amz-Expires'])}")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _incomplete(f"unsupported algorithm: only {ALGORITHM}")
    expires = params["X-Amz-Expires"]
    if not re.fullmatch(r"[0-9]{1,7}", expires) or not 0 < int(expires) <= MAX_PRESIGNED:
        raise _incomplete(f"X-Amz-Expires must be 1 to {MAX_PRESIGNED} seconds")
    return _claim(
        params["X-Amz-Credential"],
        params["X-Amz-SignedHeaders"],
        params["X-Amz-Signature"],
        params["X-Amz-Date"],
        int(expires),
    )


def _claim(credential: str, signed_headers: str, signature: str, timestamp: str, expires: int | None) -> Claim:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise _incomplete("Credential must be <access key>/<YYYYMMDD>/<region>/sqs/aws4_request")
    access_key, date, region, service, terminator = parts
    if service != SERVICE or terminator != TERMINATOR:
        raise _mismatch(f"the credential must be scoped to the service {SERVICE!r} and end with {TERMINATOR}")
    headers = tuple(signed_headers.split(";"))
    if "host" not in headers or any(name != name.lower() or not name for name in headers):
        raise _mismatch("SignedHeaders must be lower-case names and include host")
    signed_at = _instant(timestamp)
    if signed_at is None:
        raise _incomplete("X-Amz-Date must be YYYYMMDDTHHMMSSZ")
    if date != timestamp[:8]:
        raise _mismatch("the credential's date does not match X-Amz-Date")
    return Claim(access_key, date, region, service, headers, signature, timestamp, expires, signed_at)


def _instant(timestamp: str) -> float | None:
    match = _TIMESTAMP.fullmatch(timestamp)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def check_time(claim: Claim, now: float) -> None:
    """RequestExpired unless `now` is within MAX_SKEW of the signature's time (and, for a presigned URL,
    before its time plus X-Amz-Expires)."""
    latest = claim.signed_at + (claim.expires if claim.expires is not None else MAX_SKEW)
    if now < claim.signed_at - MAX_SKEW or now > latest:
        raise SignatureError("RequestExpired", "the signature has expired or its date is too far from ours", 400)


def query_pairs(query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs of a raw query string, blanks kept ('+' is a space, as browsers send)."""
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_path(raw_path: str) -> str:
    """The path without empty segments, percent-encoded again (non-S3 services encode twice). A path with dot
    segments is refused: signers sign it with them removed, but routing would see the segment they removed."""
    segments = [segment for segment in raw_path.split("/") if segment]
    if "." in segments or ".." in segments:
        raise _mismatch("a path with . or .. segments cannot be signed here")
    path = "/" + "/".join(segments) + ("/" if segments and raw_path.endswith("/") else "")
    return quote(path, safe="/~")


def canonical_query(query: str, presigned: bool) -> str:
    pairs = [(_encode(k), _encode(v)) for k, v in query_pairs(query) if not (presigned and k == "X-Amz-Signature")]
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def payload_hash(request: HttpRequest) -> str:
    """The SHA-256 of the body; a client's X-Amz-Content-SHA256 must equal it (an unsigned body is refused:
    anyone on the path could change it)."""
    actual = hashlib.sha256(request.body).hexdigest()
    declared = request.header("x-amz-content-sha256")
    if declared and declared[0].strip() == UNSIGNED_PAYLOAD:
        raise _incomplete("the body must be signed (UNSIGNED-PAYLOAD is refused)")
    if declared and not hmac.compare_digest(declared[0].strip().lower(), actual):
        raise _mismatch("the body does not match X-Amz-Content-SHA256")
    return actual


def canonical_request(request: HttpRequest, claim: Claim) -> str:
    lines = [
        request.method.upper(),
        canonical_path(request.raw_path),
        canonical_query(request.query, claim.expires is not None),
    ]
    for name in claim.signed_headers:
        values = request.header(name)
        if not values:
            raise _mismatch(f"the signed header {name[:60]!r} is missing")
        lines.append(f"{name}:" + ",".join(" ".join(value.split()) for value in values))
    lines += ["", ";".join(claim.signed_headers), payload_hash(request)]
    return "\n".join(lines)


def string_to_sign(claim: Claim, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return "\n".join((ALGORITHM, claim.timestamp, claim.scope, digest))


@functools.lru_cache(maxsize=1024)  # four HMACs saved per request: a key signs many requests per day
def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def signature(secret: str, claim: Claim, canonical: str) -> str:
    key = signing_key(secret, claim.date, claim.region, claim.service)
    return hmac.digest(key, string_to_sign(claim, canonical).encode(), "sha256").hex()


def verify(request: HttpRequest, claim: Claim, secret: str, now: float) -> None:
    """Raise SignatureError unless `claim` is a valid, current signature of `request` made with `secret`."""
    check_time(claim, now)
    expected = signature(secret, claim, canonical_request(request, claim))
    if not hmac.compare_digest(expected.encode(), claim.signature.encode()):
        raise _mismatch("the request signature we calculated does not match the signature you provided")
