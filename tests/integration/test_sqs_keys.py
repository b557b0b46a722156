"""SQS access keys end to end (issue 18): `restmq token create --sqs` beside a real `restmq serve --auth tokens`,
then `verify_request` on a real valkey-backed Store judging requests that botocore signs, in-process and over
the wire (botocore's own HTTP session to uvicorn, so the path and query are the ones a server receives)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from botocore.httpsession import URLLib3Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from restmq.core.sigv4 import HttpRequest
from restmq.storage import keys
from restmq.storage.factory import open_store
from restmq.storage.node import RedisStore
from restmq.web.sqs.sigv4_auth import AccessKeys, SqsAuthError, http_request, verify_request
from tests.helpers.auth import bearer, create_token, restmq_cli
from tests.helpers.server import ServeProcess, serve, serve_app
from tests.helpers.sigv4 import botocore_prepared, botocore_signed
from tests.helpers.topology import engines
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration

SEND = {"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0"}
BODY = orjson.dumps({"QueueUrl": "http://127.0.0.1:8888/000000000000/orders-eu", "MessageBody": "hello"})


def create_sqs_key(redis_url: str, queues: str, rights: str, *extra: str) -> tuple[str, str]:
    """`restmq token create --sqs`: (access key id, secret access key), read from its AWS_* lines."""
    args = ("token", "create", "--sqs", "--redis", redis_url, "--queues", queues, "--rights", rights, *extra)
    result = restmq_cli(*args)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, result.stdout
    key_id, secret = lines["AWS_ACCESS_KEY_ID"], lines["AWS_SECRET_ACCESS_KEY"]
    assert re.fullmatch(r"RMQ[A-Z2-7]{17}", key_id) and len(secret) == 40
    assert key_id in result.stderr and secret not in result.stderr
    return key_id, secret


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    """A real `restmq serve --auth tokens` on the test's engine."""
    with serve(["--redis", redis_url, "--auth", "tokens"], tmp_path) as running:
        yield running


@pytest.fixture
def access_keys(store: RedisStore) -> AccessKeys:
    return AccessKeys(store, cache_seconds=0.0)  # every check reads the backend; caching has its own test


async def outcome(
    access_keys: AccessKeys, request: HttpRequest, queue: str | None = "orders.eu", right: str = "write", **kw: float
) -> str:
    """The key id that verify_request accepts, or the code it refuses with."""
    try:
        return (await verify_request(access_keys, request, queue, right, **kw)).id
    except SqsAuthError as exc:
        assert exc.status in (400, 403) and exc.message
        return exc.code


async def test_a_key_from_the_cli_verifies_botocore_signatures(
    server: ServeProcess, redis_url: str, redis_client: redis.Redis, access_keys: AccessKeys
) -> None:
    key_id, secret = create_sqs_key(redis_url, "orders.*", "read,write", "--note", "celery")
    signed = botocore_signed(key_id, secret, headers=SEND, body=BODY)
    assert await outcome(access_keys, signed) == key_id
    assert await outcome(access_keys, signed, queue=None, right="read") == key_id  # a listing
    presigned = botocore_signed(
        key_id, secret, method="GET", params={"Action": "ListQueues"}, presign_expires=300, region="eu-west-3"
    )
    assert await outcome(access_keys, presigned, queue=None, right="read") == key_id

    assert await outcome(access_keys, botocore_signed(key_id, secret[:-1] + "x", headers=SEND, body=BODY)) == (
        "SignatureDoesNotMatch"
    )
    assert await outcome(access_keys, signed, queue="audit") == "AccessDenied"  # outside its patterns
    assert await outcome(access_keys, signed, right="admin") == "AccessDenied"

    # what is stored and shown: the secret lives in the record (SigV4 needs it), never in a listing or a reply
    assert key_id in redis_client.hget(keys.TOKENS, key_id)  # type: ignore[operator]
    listed = restmq_cli("token", "list", "--redis", redis_url)
    assert listed.returncode == 0 and key_id in listed.stdout and "sqs" in listed.stdout and "celery" in listed.stdout
    assert secret not in listed.stdout and secret[:8] not in listed.stdout

    # the server requiring tokens: an SQS key is no bearer token, in any spelling
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for credential in (secret, key_id, f"rmq_{key_id}_{secret}", f"rmq_{key_id[:12].lower()}_{secret}"):
            refused = await http.post("/q/orders.eu", data={"value": "x"}, headers=bearer(credential))
            assert refused.status_code == 401, refused.text
            assert secret not in refused.text
    assert secret not in server.log()


async def test_refusals_carry_the_codes_aws_answers(redis_url: str, access_keys: AccessKeys) -> None:
    reader_id, reader_secret = create_sqs_key(redis_url, "orders.*", "read")
    expiring_id, expiring_secret = create_sqs_key(redis_url, "orders.*", "write", "--expires", "1m")
    bearer_token = create_token(redis_url, "orders.*", "write")

    reader = botocore_signed(reader_id, reader_secret, headers=SEND, body=BODY)
    assert await outcome(access_keys, reader, right="read") == reader_id
    assert await outcome(access_keys, reader, right="write") == "AccessDenied"  # a read-only key sending

    expiring = botocore_signed(expiring_id, expiring_secret, headers=SEND, body=BODY)
    assert await outcome(access_keys, expiring) == expiring_id
    later = time.time() + 61  # within the signature's 15 minutes, past the key's minute
    assert await outcome(access_keys, expiring, now=later) == "InvalidClientTokenId"

    skewed = time.time() + 16 * 60
    assert await outcome(access_keys, reader, right="read", now=skewed) == "RequestExpired"
    assert await outcome(access_keys, reader, right="read", now=time.time() - 16 * 60) == "RequestExpired"

    unsigned = HttpRequest("POST", "/", "", [("Host", "127.0.0.1:8888"), *SEND.items()], BODY)
    assert await outcome(access_keys, unsigned) == "MissingAuthenticationToken"
    bearer_request = HttpRequest("POST", "/", "", [*unsigned.headers, *bearer(bearer_token).items()], BODY)
    assert await outcome(access_keys, bearer_request) == "MissingAuthenticationToken"

    token_id = bearer_token.removeprefix("rmq_").partition("_")[0]
    for stranger in ("RMQAAAAAAAAAAAAAAAAA", "AKIAIOSFODNN7EXAMPLE", token_id, bearer_token):
        request = botocore_signed(stranger, reader_secret, headers=SEND, body=BODY)
        assert await outcome(access_keys, request) == "InvalidClientTokenId"

    assert await outcome(access_keys, botocore_signed(reader_id, reader_secret, service="s3")) == (
        "SignatureDoesNotMatch"
    )
    assert restmq_cli("token", "revoke", reader_id, "--redis", redis_url).returncode == 0
    assert await outcome(access_keys, reader, right="read") == "InvalidClientTokenId"


async def test_a_revocation_reaches_a_cached_key_within_its_cache_time(redis_url: str, store: RedisStore) -> None:
    key_id, secret = create_sqs_key(redis_url, "orders.*", "write")
    cached = AccessKeys(store, cache_seconds=1.0)
    signed = botocore_signed(key_id, secret, headers=SEND, body=BODY)
    assert await outcome(cached, signed) == key_id
    revoked = await asyncio.to_thread(restmq_cli, "token", "revoke", key_id, "--redis", redis_url)
    assert revoked.returncode == 0, revoked.stderr

    async def refused() -> bool:
        return await outcome(cached, botocore_signed(key_id, secret, headers=SEND, body=BODY)) == (
            "InvalidClientTokenId"
        )

    await wait_for(refused, timeout=10, interval=0.1, what="the revocation to reach the cached key")


async def test_on_a_ring_a_key_is_known_to_every_node(tmp_path: Path) -> None:
    """The key's record is written to every ring node, so a node down changes nothing; a revoke that
    misses a node still holds (the nodes reached refuse the key)."""
    with engines(tmp_path / "ring", 3) as ring:
        urls = ",".join(engine.url for engine in ring)
        key_id, secret = await asyncio.to_thread(create_sqs_key, urls, "orders.*", "write")
        store = open_store(tuple(engine.url for engine in ring))
        try:
            signed = botocore_signed(key_id, secret, headers=SEND, body=BODY)
            assert await outcome(AccessKeys(store, cache_seconds=0.0), signed) == key_id
            ring[1].stop()
            assert await outcome(AccessKeys(store, cache_seconds=0.0), signed) == key_id
            revoked = await asyncio.to_thread(restmq_cli, "token", "revoke", key_id, "--redis", urls)
            assert revoked.returncode != 0 and "again once every node is up" in revoked.stderr
            assert await outcome(AccessKeys(store, cache_seconds=0.0), signed) == "InvalidClientTokenId"
        finally:
            await store.close()


@pytest.fixture
async def judge(store: RedisStore) -> AsyncIterator[str]:
    """A bare app (in the test, not the product) that answers what verify_request says of each request it
    receives: the path and query as uvicorn hands them over, the body as sent."""
    access_keys = AccessKeys(store)

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            record = await verify_request(access_keys, http_request(request.scope, body), "orders.eu", "write")
        except SqsAuthError as exc:
            return JSONResponse({"code": exc.code}, exc.status)
        return JSONResponse({"key": record.id})

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE"])])
    async with serve_app(app) as url:
        yield url


@pytest.mark.parametrize(
    ("method", "path", "params", "presign", "headers"),
    [
        ("POST", "/", {}, None, SEND),
        ("POST", "/000000000000/orders.eu", {}, None, {**SEND, "X-Note": "  café   au  lait "}),
        ("GET", "/000000000000/orders%3Aeu%40x", {"Action": "ReceiveMessage", "odd": "a b+c&d=é/%"}, None, {}),
        ("GET", "/", {"Action": "SendMessage", "MessageBody": "hé llo+&="}, 120, {}),
        ("DELETE", "//a//b/", {"x": ""}, None, {}),
    ],
)
async def test_requests_sent_over_the_wire_by_botocore(
    judge: str,
    redis_url: str,
    method: str,
    path: str,
    params: dict[str, str],
    presign: int | None,
    headers: dict[str, str],
) -> None:
    key_id, secret = create_sqs_key(redis_url, "orders.*", "write")
    session = URLLib3Session()
    try:
        body = BODY if method == "POST" else b""

        def send(secret_used: str) -> tuple[int, dict[str, str]]:
            prepared = botocore_prepared(
                key_id,
                secret_used,
                method=method,
                path=path,
                params=params,
                headers=headers,
                body=body,
                presign_expires=presign,
                endpoint=judge,
            )
            response = session.send(prepared)
            return response.status_code, orjson.loads(response.content)

        assert await asyncio.to_thread(send, secret) == (200, {"key": key_id})
        assert await asyncio.to_thread(send, "x" + secret[1:]) == (403, {"code": "SignatureDoesNotMatch"})
    finally:
        session.close()
