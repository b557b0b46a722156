"""SQS requests under `--auth tokens`: a valid AWS Signature V4 made with an access key from
`restmq token create --sqs`, whose record grants the right on the queue.

`verify_request` is the one entry point (the tokens branch of restmq/web/sqs/auth.py calls it); it reads
the key's record with one backend lookup, cached for CACHE_SECONDS like bearer tokens (web/auth.py), so a
revocation reaches SQS requests within 5 seconds too. Refusals carry the code and status AWS answers;
their messages never include the secret, the signature we expected or the canonical request.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

from restmq.core import sigv4
from restmq.core.store import Store
from restmq.core.tokens import TokenRecord, is_access_key

CACHE_SECONDS = 5.0
_CACHE_LIMIT = 10_000  # made-up key ids must not grow the cache without bound
_INVALID_KEY = "the security token included in the request is invalid"


class SqsAuthError(Exception):
    """A refused SQS request: `code` as AWS names it (InvalidClientTokenId, SignatureDoesNotMatch, ...)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class AccessKeys:
    """SQS access key records by access key id, read from the token store and cached for a few seconds."""

    def __init__(self, store: Store, cache_seconds: float = CACHE_SECONDS) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._records: dict[str, tuple[float, TokenRecord | None]] = {}

    @classmethod
    def of(cls, state: Any) -> AccessKeys:
        """The app's instance, made on first use over the store its Access already reads tokens from."""
        keys: AccessKeys | None = getattr(state, "sqs_access_keys", None)
        if keys is None:
            keys = state.sqs_access_keys = cls(state.access.store)
        return keys

    async def record(self, key_id: str) -> TokenRecord | None:
        """The record of this access key, if it exists, is not revoked and is an SQS key."""
        cached = self._records.get(key_id)
        if cached is None or time.monotonic() - cached[0] > self._cache_seconds:
            raw = await self._store.load_token(key_id)
            record = TokenRecord.from_json(raw) if raw else None
            if len(self._records) >= _CACHE_LIMIT:
                self._records.clear()
            cached = self._records[key_id] = (time.monotonic(), record)
        record = cached[1]
        return record if record is not None and record.sqs_secret is not None else None


def http_request(scope: MutableMapping[str, Any], body: bytes) -> sigv4.HttpRequest:
    """What a signature covers, from an ASGI scope (the path and query as they were sent) and the body."""
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    headers: Iterable[tuple[bytes, bytes]] = scope["headers"]
    return sigv4.HttpRequest(
        method=scope.get("method", "GET"),
        raw_path=path,
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=[(name.decode("latin-1"), _header_value(value)) for name, value in headers],
        body=body,
    )


def _header_value(raw: bytes) -> str:
    """The text a client signed: UTF-8 where the bytes are UTF-8 (most SDKs), else Latin-1 (Python's
    http.client, which botocore sends through, encodes header values so)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def verify_request(
    keys: AccessKeys, request: sigv4.HttpRequest, queue: str | None, right: str, now: float | None = None
) -> TokenRecord:
    """The record of the access key that validly signed `request` and holds `right` on `queue` (None: any
    queue the key covers, for listings); SqsAuthError otherwise. BackendUnavailable passes through."""
    try:
        claim = sigv4.parse(request)
    except sigv4.SignatureError as exc:
        raise SqsAuthError(exc.code, exc.message, exc.status) from None
    if claim is None:
        raise SqsAuthError(
            "MissingAuthenticationToken",
            "the request must be signed with an SQS access key (restmq token create --sqs)",
            403,
        )
    if not is_access_key(claim.access_key):  # refused before any backend read
        raise SqsAuthError("InvalidClientTokenId", _INVALID_KEY, 403)
    record = await keys.record(claim.access_key)
    moment = time.time() if now is None else now
    if record is None or record.sqs_secret is None or record.expired(moment):
        raise SqsAuthError("InvalidClientTokenId", _INVALID_KEY, 403)
    try:
        sigv4.verify(request, claim, record.sqs_secret, moment)
    except sigv4.SignatureError as exc:
        raise SqsAuthError(exc.code, exc.message, exc.status) from None
    if not record.allows(queue, right):
        raise SqsAuthError("AccessDenied", f"this access key has no {right} right on {queue or 'these queues'}", 403)
    return record
