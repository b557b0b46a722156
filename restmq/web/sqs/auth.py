"""Who may make an SQS request: the one entry point, authorize().

- no authentication configured (`--auth none`, or `auto` with no ACL and no token): any or no signature is
  accepted, as local SQS emulators do;
- `--auth acl` (and `auto` with --acl): the address rules of the section the REST routes would apply (SQS
  clients cannot send acl.conf's Basic credentials: a section that asks for them refuses SQS requests);
- `--auth tokens` (and `auto` once a token exists): AWS Signature Version 4 with `restmq token create --sqs`
  keys (to come); until then refused with MissingAuthenticationToken.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from restmq.web.auth import CONSUMER, PRODUCER, Access
from restmq.web.sqs.errors import SqsError


async def authorize(conn: HTTPConnection, body: bytes, queue: str | None, right: str) -> None:
    """Raise SqsError unless this request may use `right` ("read", "write" or "admin") on `queue` (None: a
    request about no one queue, as ListQueues). `conn` is the request (its headers, address and the app's
    Access), `body` its raw body (what a signature covers)."""
    access: Access = conn.app.state.access
    if access.mode == "none":
        return
    category = CONSUMER if right == "read" else PRODUCER
    rule = access.acl.get(category)
    client = conn.client.host if conn.client else None
    if rule is not None and not rule.admits(client):
        raise SqsError("AccessDenied", f"{client} may not use {category}.", 403)
    if access.mode == "tokens" or await access.tokens_required():
        raise SqsError("MissingAuthenticationToken", "This server requires signed requests (SQS access keys).", 403)
    if rule is not None and rule.username is not None:
        raise SqsError("AccessDenied", f"{category} needs credentials that SQS requests cannot carry.", 403)
