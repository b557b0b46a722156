"""restmq/web/hot.py sends requests straight to an endpoint; it must be the one the router picks."""

from __future__ import annotations

import pytest
from starlette.routing import Match, Route

from restmq.web.hot import DIRECT, direct_endpoints
from restmq.web.routes import routes


@pytest.mark.parametrize("queue", ["jobs", "stream", "static", "ui", "jobs:dead", "a.b-c_d"])
def test_direct_endpoints_are_the_routers_choice(queue: str) -> None:
    table = direct_endpoints(routes)
    assert {prefix for _, prefix in table} == set(DIRECT)
    for (method, prefix), endpoint in table.items():
        scope = {"type": "http", "path": prefix + queue, "method": method, "root_path": ""}
        first = next(r for r in routes if r.matches(scope)[0] is Match.FULL)
        assert isinstance(first, Route) and first.endpoint is endpoint, (method, prefix, queue)
