"""Who may make an SQS request: the one entry point, authorize().

- no authentication configured (`--auth none`, or `auto` with no ACL and no token): any or no signature is
  accepted, as local SQS emulators do;
- `--auth acl` (and `auto` with --acl): the address rules of the section the REST routes would apply (SQS
  clients cannot send acl.conf's Basic credentials: a section that asks for them refuses SQS requests);
- `--auth tokens` (and `auto` once a token exists): AWS Signature Version 4 made with a
  `restmq token create --sqs` key whose record grants the right on the queue (web/sqs/sigv4_auth.py).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from restmq.core.tokens import TokenRecord
from restmq.web.auth import CONSUMER, PRODUCER, Access
from restmq.web.sqs.errors import SqsError
from restmq.web.sqs.sigv4_auth import AccessKeys, SqsAuthError, http_request, verify_request


async def authorize(conn: HTTPConnection, body: bytes, queue: str | None, right: str) -> TokenRecord | None:
    """Raise SqsError unless this request may use `right` ("read", "write" or "admin") on `queue` (None: a
    request about no one queue, as ListQueues). `conn` is the request (its headers, address and the app's
    Access), `body` its raw body (what a signature covers). Returns the access key's record under tokens (its
    patterns and rights then filter listings and check a move's destination), else None."""
    access: Access = conn.app.state.access
    if access.mode == "none":
        return None
    category = CONSUMER if right == "read" else PRODUCER
    rule = access.acl.get(category)
    client = conn.client.host if conn.client else None
    if rule is not None and not rule.admits(client):
        raise SqsError("AccessDenied", f"{client} may not use {category}.", 403)
    if access.mode == "tokens" or (access.mode == "auto" and await access.tokens_required()):
        try:
            return await verify_request(AccessKeys.of(conn.app.state), http_request(conn.scope, body), queue, right)
        except SqsAuthError as exc:  # its messages never carry the secret nor the expected signature
            raise SqsError(exc.code, exc.message, exc.status) from None
    if rule is not None and rule.username is not None:
        raise SqsError("AccessDenied", f"{category} needs credentials that SQS requests cannot carry.", 403)
    return None
