"""restmq/web/hot.py sends requests straight to an endpoint; it must be the one the router picks."""

from __future__ import annotations

import pytest
from starlette.routing import Match, Route

from restmq.web.hot import DIRECT, direct_endpoints
from restmq.web.routes import routes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("queue", ["jobs", "stream", "static", "ui", "jobs:dead", "a.b-c_d"])
@pytest.mark.parametrize("key", ["jobs:7", "redrive", "release", "x"])
def test_direct_endpoints_are_the_routers_choice(queue: str, key: str) -> None:
    table = direct_endpoints(routes)
    assert {template for _, template in table} == set(DIRECT)
    for (method, template), endpoint in table.items():
        path = template.replace("{queue}", queue).replace("{key}", key)
        scope = {"type": "http", "path": path, "method": method, "root_path": ""}
        first = next(r for r in routes if r.matches(scope)[0] is Match.FULL)
        assert isinstance(first, Route) and first.endpoint is endpoint, (method, path)
