"""A first end-to-end check of the REST routes over real HTTP and a real engine."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


async def test_add_then_get_returns_the_message(http: httpx.AsyncClient) -> None:
    added = await http.post("/q/smoke", data={"value": "hello"})
    assert added.status_code == 200
    assert added.text == "smoke:1\r\n"
    got = await http.get("/q/smoke")
    assert got.json() == {"key": "smoke:1", "value": "hello", "count": 1}
    assert (await http.get("/q/smoke")).status_code == 204
