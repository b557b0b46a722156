"""Bearer tokens end to end: `restmq token create|list|revoke` against the backend, then every
transport of a real server honouring their scopes, rights, expiry and revocation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis

from restmq.storage import keys
from tests.helpers.auth import bearer, create_token, create_token_async, restmq_cli, token_id, ws_session
from tests.helpers.queues import add
from tests.helpers.server import run_app
from tests.helpers.streams import sse, ws_url
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def base(redis_url: str) -> AsyncIterator[str]:
    async with run_app(redis_url) as url:
        yield url


async def tokens(redis_url: str, *specs: tuple[str, str]) -> list[str]:
    """Several tokens at once, each (queues, rights)."""
    return list(await asyncio.gather(*(create_token_async(redis_url, q, r) for q, r in specs)))


async def add_as(client: httpx.AsyncClient, token: str, queue: str, value: str) -> str:
    response = await client.post(f"/q/{queue}", data={"value": value}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.text.strip()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code"} and body["code"] == code and body["error"], body
    if status == 401:
        assert "Bearer" in response.headers["www-authenticate"]


# -- the CLI and the stored form ---------------------------------------------------------------


def test_create_list_revoke_and_the_stored_form(redis_url: str, redis_client: redis.Redis) -> None:
    token = create_token(redis_url, "orders.*,audit", "read,write", "--expires", "90d", "--note", "billing")
    ident = token_id(token)
    secret = token.split("_", 2)[2]
    stored = redis_client.hgetall(keys.TOKENS)
    assert list(stored) == [ident]
    record = stored[ident]
    assert isinstance(record, str)  # the client decodes replies
    assert secret not in record and token not in record  # only the SHA-256 of the secret is kept

    listed = restmq_cli("token", "list", "--redis", redis_url)
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    assert ident in out and "orders.*,audit" in out and "read,write" in out and "billing" in out
    assert secret not in out and token not in out and secret[:8] not in out
    assert record.split('"digest":"')[1][:16] not in out  # nor the digest

    assert restmq_cli("token", "revoke", ident, "--redis", redis_url).returncode == 0
    assert redis_client.hgetall(keys.TOKENS) == {}
    again = restmq_cli("token", "revoke", ident, "--redis", redis_url)
    assert again.returncode != 0 and f"no token {ident}" in again.stderr

    full = create_token(redis_url, "q", "read")
    assert restmq_cli("token", "revoke", full, "--redis", redis_url).returncode == 0  # the whole token works too
    assert redis_client.hlen(keys.TOKENS) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queues", "q", "--rights", "root"], "rights must be some of"),
        (["--queues", "q", "--rights", ""], "rights must be some of"),
        (["--queues", ",", "--rights", "read"], "at least one queue pattern"),
        (["--queues", "q", "--rights", "read", "--expires", "5w"], "use a number and a unit"),
        (["--queues", "q", "--rights", "read", "--expires", "1.5h"], "use a number and a unit"),
        (["--queues", "q", "--rights", "read", "--expires", "0s"], "must be positive"),
    ],
)
def test_create_refuses_bad_input(redis_url: str, redis_client: redis.Redis, args: list[str], message: str) -> None:
    result = restmq_cli("token", "create", "--redis", redis_url, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stdout == ""
    assert redis_client.hlen(keys.TOKENS) == 0


def test_expiry_units_and_listing(redis_url: str) -> None:
    for unit in ("30s", "15m", "12h", "90d"):
        create_token(redis_url, "q", "read", "--expires", unit, "--note", f"expires-{unit}")
    out = restmq_cli("token", "list", "--redis", redis_url).stdout
    for unit in ("30s", "15m", "12h", "90d"):
        assert f"expires-{unit}" in out
    assert "never" not in out


# -- on the server ------------------------------------------------------------------------------


async def test_once_a_token_exists_credentials_are_required(redis_url: str) -> None:
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/q/jobs", data={"value": "open"})).status_code == 200  # no token yet: open
    await create_token_async(redis_url, "*", "admin")
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url) as client:
        for method, path in [("GET", "/q/jobs"), ("POST", "/q/jobs"), ("GET", "/q/"), ("GET", "/stats/"),
                             ("GET", "/"), ("GET", "/metrics"), ("DELETE", "/q/jobs"), ("GET", "/j/jobs")]:  # fmt: skip
            assert_error(await client.request(method, path), 401, "UNAUTHORIZED")
        response = await client.post("/queue", json={"cmd": "take", "queue": "jobs"})
        assert_error(response, 401, "UNAUTHORIZED")
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/ready")).status_code == 200
        for bad in ("rmq_nope", "garbage", "rmq_0123456789ab_secret", "Basic Zm9vOmJhcg=="):
            assert_error(await client.get("/q/jobs", headers=bearer(bad)), 401, "TOKEN_INVALID")
        assert_error(await client.get("/q/jobs", params={"token": "rmq_0123456789ab_x"}), 401, "TOKEN_INVALID")
        async with client.stream("GET", "/sse/jobs") as response:
            assert response.status_code == 401
        assert (await ws_session(ws_url(url, "jobs"))).close_code == 1008


async def test_scopes_and_rights_on_rest(redis_url: str, base: str) -> None:
    reader, writer, admin, both = await tokens(
        redis_url, ("orders.*", "read"), ("orders.*", "write"), ("orders.*", "admin"), ("orders.*,audit", "read,write")
    )
    async with httpx.AsyncClient(base_url=base) as client:
        # write: add yes, read no
        assert (await client.post("/q/orders.eu", data={"value": "1"}, headers=bearer(writer))).status_code == 200
        assert_error(await client.get("/q/orders.eu", headers=bearer(writer)), 403, "FORBIDDEN")
        assert_error(await client.post("/q/audit", data={"value": "x"}, headers=bearer(writer)), 403, "FORBIDDEN")
        assert_error(await client.post("/q/orders", data={"value": "x"}, headers=bearer(writer)), 403, "FORBIDDEN")
        assert_error(await client.delete("/q/orders.eu", headers=bearer(writer)), 403, "FORBIDDEN")  # purge: admin
        # read: get yes, add no, other queues no, admin actions no
        assert_error(await client.post("/q/orders.eu", data={"value": "x"}, headers=bearer(reader)), 403, "FORBIDDEN")
        got = await client.get("/q/orders.eu", headers=bearer(reader))
        assert got.status_code == 200 and got.json()["value"] == "1"
        assert_error(await client.get("/q/audit", headers=bearer(reader)), 403, "FORBIDDEN")
        assert (await client.get("/stats/orders.eu", headers=bearer(reader))).status_code == 200
        assert_error(await client.get("/stats/audit", headers=bearer(reader)), 403, "FORBIDDEN")
        assert_error(await client.delete("/q/orders.eu", headers=bearer(reader)), 403, "FORBIDDEN")
        assert_error(
            await client.post("/p/orders.eu", data={"policy": "roundrobin"}, headers=bearer(reader)), 403, "FORBIDDEN"
        )
        assert_error(
            await client.post("/control/orders.eu", data={"status": "stop"}, headers=bearer(reader)), 403, "FORBIDDEN"
        )
        # the same through ?token=, POST / and the JSON protocol
        assert (await client.get("/q/orders.eu", params={"token": reader})).status_code == 204
        assert_error(await client.get("/q/audit", params={"token": reader}), 403, "FORBIDDEN")
        response = await client.post("/", data={"queue": "audit", "value": "x"}, headers=bearer(writer))
        assert_error(response, 403, "FORBIDDEN")
        response = await client.post("/", data={"queue": "orders.us", "value": "2"}, headers=bearer(writer))
        assert response.status_code == 200
        response = await client.post(
            "/queue", json={"cmd": "add", "queue": "orders.us", "value": "x"}, headers=bearer(reader)
        )
        assert_error(response, 403, "FORBIDDEN")
        response = await client.post("/queue", json={"cmd": "take", "queue": "orders.us"}, headers=bearer(writer))
        assert_error(response, 403, "FORBIDDEN")
        response = await client.post("/queue", json={"cmd": "take", "queue": "orders.us"}, headers=bearer(reader))
        assert response.json()["value"] == "2"
        assert_error(await client.get("/", params={"queue": "audit"}, headers=bearer(reader)), 403, "FORBIDDEN")
        # read,write on two patterns
        assert (await client.post("/q/audit", data={"value": "a"}, headers=bearer(both))).status_code == 200
        assert (await client.get("/q/audit", headers=bearer(both))).json()["value"] == "a"
        # admin: everything on its queues, including purge, policy, control and redrive
        await client.post("/q/orders.eu", data={"value": "p"}, headers=bearer(admin))
        purged = await client.delete("/q/orders.eu", headers=bearer(admin))
        assert purged.status_code == 200 and purged.json()["queue"] == "orders.eu"
        for path, data in [("/p/orders.eu", {"policy": "roundrobin"}), ("/control/orders.eu", {"status": "start"})]:
            assert (await client.post(path, data=data, headers=bearer(admin))).status_code == 200
        assert (await client.post("/q/orders.eu:dead/redrive", headers=bearer(admin))).status_code == 200
        assert_error(await client.delete("/q/audit", headers=bearer(admin)), 403, "FORBIDDEN")
        # a lease and its ack need only read
        await client.post("/q/orders.eu", data={"value": "leased"}, headers=bearer(writer))
        leased = (await client.get("/q/orders.eu", params={"lease": "30"}, headers=bearer(reader))).json()
        acked = await client.delete(f"/q/orders.eu/{leased['key']}", headers=bearer(reader))
        assert acked.status_code == 200, acked.text


async def test_listings_show_only_covered_queues(redis_url: str, base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for queue in ("orders.eu", "orders.us", "audit", "ordersx"):
            await add(client, queue, "x")
        (reader,) = await tokens(redis_url, ("orders.*", "read"))
        auth = bearer(reader)
        listing = (await client.get("/q/", headers=auth)).json()
        assert sorted(listing["queues"]) == ["orders.eu", "orders.us"] and listing["count"] == 2
        html = await client.get("/q/", headers={**auth, "Accept": "text/html"})
        assert "orders.eu" in html.text and "audit" not in html.text and "ordersx" not in html.text
        stats = (await client.get("/stats/", headers=auth)).json()
        assert sorted(s["queue"] for s in stats["queues"]) == ["orders.eu", "orders.us"]
        dashboard = await client.get("/", headers=auth)
        assert dashboard.status_code == 200
        assert "orders.eu" in dashboard.text and "orders.us" in dashboard.text
        assert "audit" not in dashboard.text and "ordersx" not in dashboard.text
        (writer,) = await tokens(redis_url, ("*", "write"))
        assert_error(await client.get("/q/", headers=bearer(writer)), 403, "FORBIDDEN")  # listing needs read


async def test_tokens_on_streams(redis_url: str, base: str) -> None:
    reader, writer = await tokens(redis_url, ("orders.*", "read"), ("orders.*", "write"))
    async with httpx.AsyncClient(base_url=base) as client:
        # SSE with the header, and with ?token= (EventSource cannot set headers)
        async with sse(base, "orders.eu", token=reader) as by_query:
            assert by_query.response is not None and by_query.response.status_code == 200
            await add_as(client, writer, "orders.eu", "one")
            await by_query.wait_count(1)
            assert by_query.messages[0]["value"] == "one"
        for headers, params, status in [
            (bearer(reader), {}, 200),
            ({}, {"token": writer}, 403),  # no read right
            ({}, {"token": reader.replace("rmq_", "rmq_x")}, 401),
            (bearer(reader), {"x": "1"}, 200),
        ]:
            for path in ("/sse/orders.eu", "/c/orders.eu"):
                async with client.stream("GET", path, headers=headers, params=params) as response:
                    assert response.status_code == status, (path, headers, params)
        async with client.stream("GET", "/sse/audit", params={"token": reader}) as response:
            assert response.status_code == 403
            await response.aread()
            assert response.json()["code"] == "FORBIDDEN"

        # WebSocket: header or ?token=, scope and rights checked before accepting, and per frame
        await add_as(client, writer, "orders.eu", "two")
        take = ['{"cmd":"take"}']
        by_header = await ws_session(ws_url(base, "orders.eu"), headers=bearer(reader), expect_frames=1)
        assert by_header.frames[0]["value"] == "two"  # the backlog, streamed
        by_query_ws = await ws_session(ws_url(base, "orders.eu", f"token={reader}"), send=take, expect_frames=1)
        assert by_query_ws.frames[0]["code"] == "QUEUE_EMPTY"
        for url, headers in [
            (ws_url(base, "audit"), bearer(reader)),
            (ws_url(base, "orders.eu"), bearer(writer)),
            (ws_url(base, "orders.eu", "token=rmq_0123456789ab_nope"), {}),
            (ws_url(base, "orders.eu"), {}),
        ]:
            refused = await ws_session(url, headers=headers)
            assert refused.close_code == 1008 and not refused.frames, (url, refused)
        frames = [
            '{"cmd":"add","value":"x"}',
            '{"cmd":"take","queue":"audit"}',
            '{"cmd":"take","queue":"orders.us"}',
        ]
        replies = (
            await ws_session(ws_url(base, "orders.eu"), headers=bearer(reader), send=frames, expect_frames=3)
        ).frames
        assert replies[0]["code"] == "FORBIDDEN" and replies[1]["code"] == "FORBIDDEN"
        assert replies[2]["code"] == "QUEUE_EMPTY"


async def test_revocation_takes_effect_within_5_seconds(redis_url: str, base: str) -> None:
    (token,) = await tokens(redis_url, ("jobs", "read"))
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/q/jobs", headers=bearer(token))).status_code == 204  # cached as valid now
        result = await asyncio.to_thread(restmq_cli, "token", "revoke", token_id(token), "--redis", redis_url)
        assert result.returncode == 0 and f"revoked {token_id(token)}" in result.stdout
        revoked_at = time.monotonic()

        async def refused() -> bool:
            response = await client.get("/q/jobs", headers=bearer(token))
            if response.status_code == 401:
                assert response.json()["code"] == "TOKEN_INVALID"
                return True
            assert response.status_code == 204
            return False

        await wait_for(refused, timeout=5.5, interval=0.1, what="the revoked token to be refused")
        assert time.monotonic() - revoked_at <= 5.5


async def test_an_expired_token_is_refused(redis_url: str, base: str) -> None:
    token = await create_token_async(redis_url, "jobs", "read", "--expires", "1s")
    async with httpx.AsyncClient(base_url=base) as client:

        async def refused() -> bool:
            return (await client.get("/q/jobs", headers=bearer(token))).status_code == 401

        await wait_for(refused, timeout=10, interval=0.05, what="the token to expire")
        assert_error(await client.get("/q/jobs", headers=bearer(token)), 401, "TOKEN_INVALID")


async def test_the_first_token_locks_a_running_server_within_5_seconds(redis_url: str, base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/q/jobs")).status_code == 204  # open: the server has seen no token
        token = await create_token_async(redis_url, "jobs", "read")
        created_at = time.monotonic()

        async def locked() -> bool:
            return (await client.get("/q/jobs")).status_code == 401

        await wait_for(locked, timeout=5.5, interval=0.1, what="requests without credentials to be refused")
        assert time.monotonic() - created_at <= 5.5
        assert (await client.get("/q/jobs", headers=bearer(token))).status_code == 204


async def test_a_valid_token_locks_the_server_at_once(redis_url: str, base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/q/jobs")).status_code == 204
        token = await create_token_async(redis_url, "jobs", "read")
        assert (await client.get("/q/jobs", headers=bearer(token))).status_code == 204
        assert_error(await client.get("/q/jobs"), 401, "UNAUTHORIZED")  # no need to wait for the cache
