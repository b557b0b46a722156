"""Requests signed by botocore's own Signature V4 signers (an implementation independent of ours), turned into
what a server receives: the path and query as sent, the headers (Host included, as an HTTP client adds it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.credentials import Credentials

from restmq.core.sigv4 import HttpRequest

ENDPOINT = "http://127.0.0.1:8888"


def botocore_prepared(
    access_key: str,
    secret: str,
    *,
    method: str = "POST",
    path: str = "/",
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    region: str = "us-east-1",
    service: str = "sqs",
    presign_expires: int | None = None,
    endpoint: str = ENDPOINT,
) -> AWSPreparedRequest:
    """Sign with SigV4Auth (Authorization header) or, given `presign_expires`, SigV4QueryAuth (a presigned URL);
    the request as botocore would send it. `path` is sent as given (percent-encode it yourself); `params` go
    in the query."""
    request = AWSRequest(method=method, url=endpoint + path, params=dict(params or {}), headers=dict(headers or {}))
    request.data = body
    credentials = Credentials(access_key, secret)
    if presign_expires is None:
        SigV4Auth(credentials, service, region).add_auth(request)
    else:
        SigV4QueryAuth(credentials, service, region, expires=presign_expires).add_auth(request)
    return request.prepare()


def botocore_signed(
    access_key: str,
    secret: str,
    *,
    method: str = "POST",
    path: str = "/",
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    region: str = "us-east-1",
    service: str = "sqs",
    presign_expires: int | None = None,
    endpoint: str = ENDPOINT,
) -> HttpRequest:
    """botocore_prepared(...) as a server receives it (Host added, as an HTTP client sends it)."""
    prepared = botocore_prepared(
        access_key,
        secret,
        method=method,
        path=path,
        params=params,
        headers=headers,
        body=body,
        region=region,
        service=service,
        presign_expires=presign_expires,
        endpoint=endpoint,
    )
    url = urlsplit(prepared.url)
    sent: list[tuple[str, str]] = [("Host", url.netloc)]
    sent += [(name, value) for name, value in prepared.headers.items()]
    return HttpRequest(prepared.method, url.path, url.query, sent, prepared.body or b"")


def replaced(request: HttpRequest, **changes: object) -> HttpRequest:
    fields: dict[str, object] = {
        "method": request.method,
        "raw_path": request.raw_path,
        "query": request.query,
        "headers": request.headers,
        "body": request.body,
    }
    fields.update(changes)
    return HttpRequest(**fields)  # type: ignore[arg-type]


def with_header(headers: Sequence[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(key, value if key.lower() == name else old) for key, old in headers]
