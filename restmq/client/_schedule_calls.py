"""The HTTP calls of schedules (docs/schedules.md), shared by the sync and the async client."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from restmq.client._calls import Call, check_queue
from restmq.client.errors import BadRequestError
from restmq.client.models import Schedule

SCHEDULE_ID = re.compile(r"s_[0-9a-f]{16}")


def _path(schedule_id: str) -> str:
    """The path of a schedule; an id of another shape never reaches a URL."""
    if not isinstance(schedule_id, str) or not SCHEDULE_ID.fullmatch(schedule_id):
        raise BadRequestError(f"invalid schedule id {schedule_id!r}", code="PARAMETER_INVALID")
    return f"/schedules/{schedule_id}"


def _object(response: httpx.Response) -> dict[str, Any]:
    data = response.json()
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object from {response.request.url}, got {type(data).__name__}")
    return data


def _schedule(response: httpx.Response) -> Schedule:
    return Schedule.from_dict(_object(response))


def create(queue: str, value: str, *, every: int | None, cron: str | None, tz: str | None) -> Call[Schedule]:
    check_queue(queue)
    if (every is None) == (cron is None):
        raise ValueError("give exactly one of every and cron")
    body: dict[str, object] = {"queue": queue, "value": value}
    body |= {"every": every} if every is not None else {"cron": cron}
    if tz is not None:
        body["tz"] = tz
    content = json.dumps(body).encode()
    return Call("POST", "/schedules", _schedule, content=content, headers={"Content-Type": "application/json"})


def listing() -> Call[list[Schedule]]:
    return Call("GET", "/schedules", lambda r: [Schedule.from_dict(s) for s in _object(r)["schedules"]])


def one(schedule_id: str) -> Call[Schedule]:
    return Call("GET", _path(schedule_id), _schedule)


def set_paused(schedule_id: str, paused: bool) -> Call[Schedule]:
    return Call("POST", f"{_path(schedule_id)}/{'pause' if paused else 'resume'}", _schedule)


def delete(schedule_id: str) -> Call[bool]:
    return Call("DELETE", _path(schedule_id), lambda r: bool(_object(r)["deleted"]))
