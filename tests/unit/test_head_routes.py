"""Issue 13: HEAD never hands out a message. Every GET route of the table is either one that only looks
(its GET answers HEAD) or has a HEAD route of restmq/web/head.py ahead of it; a new GET route must be
put in one group or the other here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.routing import Route

from restmq.web import docs_page, head, observe, openapi, ops, push, rest, ring, schedules, ui
from restmq.web.hot import direct_endpoints
from restmq.web.routes import routes

pytestmark = pytest.mark.unit

ONLY_LOOK = {
    rest.list_queues,
    rest.policy,
    rest.control,
    rest.stats_all,
    rest.stats_queue,
    ui.queue_page,
    ui.dashboard,
    ui.peek,
    observe.metrics,
    ops.health,
    ops.ready,
    openapi.openapi_json,
    openapi.asyncapi_json,
    docs_page.docs_page,
    push.listing,  # push subscriptions: reading them hands out no message
    push.show,
    ring.show,  # the ring's placement table: no message either
    schedules.list_schedules,  # schedules: their definitions, not messages
    schedules.get_schedule,
}
HEAD_ANSWERS = {head.queue, head.index, head.stream, head.stats_stream}


def handler(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """The function behind auth.guard's wrapper."""
    return getattr(endpoint, "__wrapped__", endpoint)


def head_endpoint(path: str) -> Callable[..., Any]:
    """What the router runs for HEAD on a route template: the first route with that path taking HEAD."""
    return next(r.endpoint for r in routes if isinstance(r, Route) and r.path == path and "HEAD" in (r.methods or ()))


def test_every_get_route_answers_head_without_handing_out_messages() -> None:
    for route in routes:
        if not isinstance(route, Route) or "GET" not in (route.methods or ()):
            continue
        reached = handler(head_endpoint(route.path))
        assert reached in HEAD_ANSWERS or (reached is handler(route.endpoint) and reached in ONLY_LOOK), (
            f"HEAD {route.path} reaches {reached.__qualname__}: give it a HEAD route in head.py or list it here"
        )


def test_the_direct_routes_answer_head_from_head_py() -> None:
    table = direct_endpoints(routes)
    for template in ("/q/{queue}", "/c/{queue}", "/sse/{queue}"):
        assert handler(table[("HEAD", template)]) in HEAD_ANSWERS
        assert handler(table[("GET", template)]) not in HEAD_ANSWERS
