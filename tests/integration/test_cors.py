"""CORS: off by default; listed origins may call with credentials; a wildcard never with credentials."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.queues import add
from tests.helpers.server import run_app

pytestmark = pytest.mark.integration

APP = "https://app.example"
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_off_by_default(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "x")
    response = await http.get("/q/jobs", headers={"Origin": APP})  # another origin: refused, the message stays
    assert response.status_code == 403 and response.json()["code"] == "CROSS_SITE_REQUEST"
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert (await http.get("/q/jobs")).json()["value"] == "x"
    preflight = await http.options("/q/jobs", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code in (404, 405)


async def test_a_listed_origin_is_allowed_with_credentials(redis_url: str) -> None:
    async with run_app(redis_url, cors_origins=(APP,)) as base, httpx.AsyncClient(base_url=base) as client:
        preflight = await client.options("/q/jobs", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == APP
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed_headers = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers and "content-type" in allowed_headers
        assert "origin" in preflight.headers.get("vary", "").lower()

        await add(client, "jobs", "x")
        response = await client.get("/q/jobs", headers={"Origin": APP})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == APP
        assert response.headers["access-control-allow-credentials"] == "true"
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "x-request-id" in exposed and "retry-after" in exposed
        error = await client.get("/q/bad name", headers={"Origin": APP})  # errors carry CORS headers too
        assert error.status_code == 400 and error.headers["access-control-allow-origin"] == APP

        other = await client.options("/q/jobs", headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert other.status_code == 400
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"
        plain = await client.get("/q/jobs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in plain.headers  # without it a browser shares nothing


@pytest.mark.parametrize("origins", [("*",), ("*", APP)])
async def test_a_wildcard_never_allows_credentials(redis_url: str, origins: tuple[str, ...]) -> None:
    async with run_app(redis_url, cors_origins=origins) as base, httpx.AsyncClient(base_url=base) as client:
        for origin in (APP, "https://anyone.example"):
            preflight = await client.options("/q/jobs", headers={**PREFLIGHT, "Origin": origin})
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] in ("*", origin)
            assert "access-control-allow-credentials" not in preflight.headers
            for headers in ({"Origin": origin}, {"Origin": origin, "Cookie": "session=1"}):
                response = await client.get("/stats/", headers=headers)
                assert response.status_code == 200
                assert response.headers["access-control-allow-origin"] in ("*", origin)
                assert response.headers.get("access-control-allow-credentials") != "true"
