"""HTTP handlers of schedules (docs/schedules.md): parse, call one ScheduleService method, render.

Managing a schedule takes the admin right on its queue; reading one, the read right: a token sees the schedules
of the queues it covers, and no other (another's id answers 404, as a missing one does).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from restmq.core.schedule_service import ScheduleService, not_found
from restmq.core.schedules import Schedule
from restmq.errors import InvalidJSON, RestMQError
from restmq.web import shapes
from restmq.web.auth import CONSUMER, PRODUCER, authorize
from restmq.web.http import decode_text, read_body, render

BODY_LIMIT = 64 * 1024  # bytes of a request body beyond the value (its queue, cron, tz and JSON quoting)


def _service(request: Request) -> ScheduleService:
    service: ScheduleService = request.app.state.schedules
    return service


def _shown(schedule: Schedule, now_ms: int) -> shapes.Schedule:
    described: Any = schedule.describe(now_ms)
    shown: shapes.Schedule = described
    if schedule.last_key is not None:
        shown["last_key"] = f"{schedule.queue}:{schedule.last_key}"
    return shown


async def _visible(request: Request, schedule_id: str, right: str) -> Schedule:
    """The schedule, if the caller has `right` on its queue; 404 otherwise (its existence is not revealed)."""
    category = PRODUCER if right == "admin" else CONSUMER
    await authorize(request, category, None, right)  # credentials first: 401 before 404
    schedule = await _service(request).get(schedule_id)
    try:
        await authorize(request, category, schedule.queue, right)
    except RestMQError as exc:
        if exc.status == 403:
            raise not_found() from None
        raise
    return schedule


async def create_schedule(request: Request) -> Response:
    """A new schedule; its ticks count from now (the engine's clock). Admin right on its queue."""
    service = _service(request)
    limit = min(service.limits.max_body, service.limits.max_value * 6 + BODY_LIMIT)  # \\u escapes: 6 bytes a character
    raw = await read_body(request, limit)
    try:
        body = orjson.loads(decode_text(raw))
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"malformed JSON: {exc}") from exc
    queue = body.get("queue") if isinstance(body, dict) else None
    await authorize(request, PRODUCER, queue if isinstance(queue, str) else None, "admin")
    schedule = await service.create(body)
    return render(request, _shown(schedule, schedule.created_ms), 201)


async def list_schedules(request: Request) -> Response:
    """Every schedule on queues the caller's token covers, by queue."""
    record = await authorize(request, CONSUMER, None, "read")
    service = _service(request)
    now = await service.now_ms()
    found = [s for s in await service.list() if record is None or record.covers(s.queue)]
    listed: shapes.ScheduleList = {"schedules": [_shown(s, now) for s in found], "count": len(found)}
    return render(request, listed)


async def get_schedule(request: Request) -> Response:
    """One schedule, its next tick and the last one published."""
    schedule = await _visible(request, request.path_params["schedule_id"], "read")
    return render(request, _shown(schedule, await _service(request).now_ms()))


async def pause_schedule(request: Request) -> Response:
    """No tick is published until it is resumed."""
    return await _set_paused(request, True)


async def resume_schedule(request: Request) -> Response:
    """Ticks are published again, counted from now: those that fell while it was paused are not."""
    return await _set_paused(request, False)


async def _set_paused(request: Request, paused: bool) -> Response:
    schedule = await _visible(request, request.path_params["schedule_id"], "admin")
    service = _service(request)
    changed = await service.set_paused(schedule.id, paused)
    return render(request, _shown(changed, await service.now_ms()))


async def delete_schedule(request: Request) -> Response:
    """The schedule is removed; messages it published stay in their queue."""
    schedule = await _visible(request, request.path_params["schedule_id"], "admin")
    await _service(request).delete(schedule.id)
    removed: shapes.ScheduleRemoved = {"id": schedule.id, "deleted": True}
    return render(request, removed)
