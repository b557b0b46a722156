"""Push subscription routes (docs/push.md): POST /push/<queue> creates or updates (and resumes), GET /push/ lists,
GET /push/<queue> shows one, DELETE /push/<queue> removes. Admin right; the secret is never shown back."""

from __future__ import annotations

from typing import Any, cast

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.requests import Request
from starlette.responses import Response

from restmq.core.push import Subscription, from_fields, parse_request
from restmq.core.service import DEAD_SUFFIX
from restmq.errors import InvalidJSON, InvalidParameter, NotFound, PushDisabled
from restmq.push.allow import AllowList
from restmq.push.runner import PushBackend, PushRunner
from restmq.web.auth import PRODUCER, authorize
from restmq.web.http import read_body, render

MAX_BODY = 64 * 1024  # bytes of a subscription request


def _backend(request: Request) -> PushBackend:
    return cast(PushBackend, request.app.state.service.store)


def _allow(request: Request) -> AllowList:
    allow: AllowList = request.app.state.push_allow
    if not allow.enabled:
        raise PushDisabled("push is off: start the server with --push-allow HOST|CIDR,... to allow targets")
    return allow


async def _shown(request: Request, subs: list[Subscription]) -> list[dict[str, Any]]:
    """The subscriptions as replies show them, with their queues' retrying (delayed) and in-flight (leased) counts."""
    stats = await request.app.state.service.store.stats([sub.queue for sub in subs]) if subs else []
    return [{**sub.public(retrying=row.delayed), "in_flight": row.leased} for sub, row in zip(subs, stats, strict=True)]


async def save(request: Request) -> Response:
    """Create or update the queue's subscription; a paused one resumes."""
    queue = request.path_params["queue"]
    allow = _allow(request)
    if queue.endswith(DEAD_SUFFIX):
        raise InvalidParameter("a dead-letter queue cannot have a push subscription")
    body = await read_body(request, MAX_BODY)
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidJSON("the body must be a JSON object (UTF-8)") from None
    sub = parse_request(queue, raw)
    allow.check_url(sub.url)
    await _backend(request).save_push(queue, sub.fields())
    runner: PushRunner | None = request.app.state.push
    if runner is not None:
        runner.changed(queue, sub)
    return await show(request)


async def show(request: Request) -> Response:
    queue = request.path_params["queue"]
    fields = await _backend(request).load_push(queue)
    if fields is None:
        raise NotFound(f"queue {queue} has no push subscription")
    return render(request, (await _shown(request, [from_fields(queue, fields)]))[0])


async def remove(request: Request) -> Response:
    queue = request.path_params["queue"]
    removed = await _backend(request).delete_push(queue)
    runner: PushRunner | None = request.app.state.push
    if runner is not None:
        runner.changed(queue, None)
    return render(request, {"queue": queue, "removed": removed})


async def listing(request: Request) -> Response:
    """Every subscription the caller's token may administer (all of them without tokens)."""
    token = await authorize(request, PRODUCER, None, "admin")
    listed = await _backend(request).list_push()
    subs = [from_fields(queue, fields) for queue, fields in listed.items()]
    if token is not None:
        subs = [sub for sub in subs if token.allows(sub.queue, "admin")]
    return render(
        request, {"subscriptions": await _shown(request, subs), "enabled": request.app.state.push_allow.enabled}
    )


def start_push(state: Any, allow: AllowList) -> PushRunner | None:
    """This process's push delivery, when --push-allow is set (app.py's lifespan; it closes it)."""
    state.push_allow = allow
    state.push = None
    if allow.enabled:
        service = state.service
        state.push = PushRunner(cast(PushBackend, service.store), service.waiters, allow)
        state.push.start()
    return cast(PushRunner | None, state.push)


def push_families(runner: PushRunner | None) -> list[object]:
    """restmq_push_* for this process (nothing without --push-allow). No label holds a URL (it may carry a token)."""
    if runner is None:
        return []
    deliveries = CounterMetricFamily(
        "restmq_push_deliveries",
        "Push delivery attempts of this process, by outcome: delivered (2xx, acknowledged), delivered_late (2xx "
        "after the lease ran out), failed, refused (address not allowed), dead (moved to <queue>:dead), paused (410)",
        labels=["outcome"],
    )
    for outcome in ("delivered", "delivered_late", "failed", "refused", "dead", "paused"):
        deliveries.add_metric([outcome], runner.counts[outcome])
    subscriptions = GaugeMetricFamily(
        "restmq_push_subscriptions", "Push subscriptions this process delivers", value=len(runner.subscriptions)
    )
    in_flight = GaugeMetricFamily(
        "restmq_push_in_flight", "Push deliveries of this process waiting for a reply", value=runner.in_flight()
    )
    return [deliveries, subscriptions, in_flight]
