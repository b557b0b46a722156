"""Schedules: what one is, the rules its fields must follow, and when its ticks fall.

A schedule publishes its value to its queue at each tick: the ticks of a 5-field cron expression read in a time
zone, or every `every` seconds counted from the schedule's creation. Only the latest due tick is ever published
(catch up once: docs/schedules.md), and the engine's clock says what is due, so that every server process agrees.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from croniter import CroniterBadDateError, croniter  # type: ignore[import-untyped]

from restmq.core.names import check_queue_name
from restmq.errors import InvalidParameter, InvalidValue, MissingField, NotFound, PayloadTooLarge

MIN_EVERY = 1  # seconds: the shortest interval
MAX_EVERY = 366 * 86400  # seconds: the longest interval (a year and a day)
MAX_SCHEDULES = 10_000  # schedules per backend node (a ring's nodes each hold this many)
ID_PATTERN = re.compile(r"^s_[0-9a-f]{16}$")
TZ_PATTERN = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,2}$")
FIELDS = frozenset({"queue", "value", "cron", "every", "tz"})


@dataclass(frozen=True)
class Schedule:
    id: str
    queue: str
    value: str
    cron: str | None
    every: int | None
    tz: str
    created_ms: int
    paused: bool = False
    last_tick_ms: int = 0  # ticks up to this one are done: the last published, or the creation or resume time
    fired: int = 0  # messages published so far
    last_key: str | None = None  # the number of the last message published
    fired_at_ms: int | None = None  # the last tick published (last_tick_ms also moves on a resume)

    def definition(self) -> str:
        """The fixed part but the value (stored apart: the runners read schedules without it)."""
        fields = {k: v for k, v in asdict(self).items() if k in (*FIELDS, "id", "created_ms") and k != "value"}
        return orjson.dumps(fields).decode()

    def latest_tick(self, now_ms: int) -> int | None:
        """The latest tick at or before `now_ms` that comes after the creation time, or None."""
        if self.every is not None:
            step = self.every * 1000
            ticks = (now_ms - self.created_ms) // step
            return self.created_ms + ticks * step if ticks >= 1 else None
        zone = ZoneInfo(self.tz)
        # +1 ms: a tick exactly at now_ms counts (get_prev returns ticks strictly before its start)
        start = datetime.fromtimestamp((now_ms + 1) / 1000, zone)
        tick = _ms(croniter(self.cron, start).get_prev(datetime))
        return tick if tick > self.created_ms else None

    def next_tick(self, now_ms: int) -> int:
        """The first tick after `now_ms` (and after the creation time)."""
        after = max(now_ms, self.created_ms)
        if self.every is not None:
            step = self.every * 1000
            return self.created_ms + ((after - self.created_ms) // step + 1) * step
        start = datetime.fromtimestamp(after / 1000, ZoneInfo(self.tz))
        return _ms(croniter(self.cron, start).get_next(datetime))

    def describe(self, now_ms: int) -> dict[str, Any]:
        """The schedule as the API shows it."""
        shown = asdict(self)
        shown["next_tick_ms"] = None if self.paused else self.next_tick(now_ms)
        shown["last_tick_ms"] = shown.pop("fired_at_ms")
        return shown


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def iso_tick(tick_ms: int) -> str:
    """A tick as the message template shows it: ISO 8601 in UTC, to the millisecond."""
    return datetime.fromtimestamp(tick_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return "s_" + secrets.token_hex(8)


def check_id(schedule_id: str) -> str:
    if not ID_PATTERN.match(schedule_id):
        raise NotFound("no such schedule", code="SCHEDULE_NOT_FOUND")
    return schedule_id


def _zone(tz: object) -> str:
    if not isinstance(tz, str) or len(tz) > 64 or not TZ_PATTERN.match(tz):
        raise InvalidParameter("tz must be an IANA time zone name such as Europe/Paris")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidParameter(f"unknown time zone {tz!r}") from None
    return tz


def _cron(expression: object) -> str:
    if not isinstance(expression, str) or len(expression) > 200:
        raise InvalidParameter("cron must be a string of 5 fields: minute hour day-of-month month day-of-week")
    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise InvalidParameter(f"invalid cron expression {expression!r}: 5 fields, e.g. '*/5 * * * *'")
    return " ".join(fields)


def _every(every: object) -> int:
    if isinstance(every, bool) or not isinstance(every, int | float) or not math.isfinite(every) or every % 1:
        raise InvalidParameter("every must be a whole number of seconds")
    if not MIN_EVERY <= every <= MAX_EVERY:
        raise InvalidParameter(f"every must be between {MIN_EVERY} and {MAX_EVERY} seconds")
    return int(every)


def parse(body: object, *, max_value: int, now_ms: int) -> Schedule:
    """A new schedule from a request's JSON body, or a 400 naming the rule it breaks."""
    if not isinstance(body, dict):
        raise InvalidValue("the body must be a JSON object {queue, value, cron | every, tz}")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidParameter(f"unknown field(s): {', '.join(unknown)}")
    for field in ("queue", "value"):
        if field not in body:
            raise MissingField(f"missing field '{field}'")
    queue, value = body["queue"], body["value"]
    if not isinstance(queue, str):
        raise InvalidParameter("queue must be a string")
    check_queue_name(queue)
    if not isinstance(value, str):
        raise InvalidValue("value must be a string (send JSON documents as text)")
    if len(value) > max_value or len(value.encode()) > max_value:
        raise PayloadTooLarge(f"a message value exceeds the limit of {max_value} bytes")
    has_cron, has_every = body.get("cron") is not None, body.get("every") is not None
    if has_cron == has_every:
        raise InvalidParameter("give exactly one of cron and every")
    tz = _zone("UTC" if body.get("tz") is None else body["tz"])
    if has_every and body.get("tz") not in (None, "UTC"):
        raise InvalidParameter("tz applies to cron schedules only")
    cron = _cron(body["cron"]) if has_cron else None
    every = _every(body["every"]) if has_every else None
    schedule = Schedule(new_id(), queue, value, cron, every, tz, now_ms, last_tick_ms=now_ms)
    if cron is not None:
        try:
            schedule.next_tick(now_ms)
        except CroniterBadDateError:
            raise InvalidParameter(f"cron expression {cron!r} never fires") from None
    return schedule


def load(definition: str, state: dict[str, str]) -> Schedule:
    """A schedule from its stored definition and tick state (storage's hash fields)."""
    fields = orjson.loads(definition)
    return replace(
        Schedule(**fields, value=state.get("value", "")),
        paused=state.get("paused") == "1",
        last_tick_ms=int(state.get("last") or fields["created_ms"]),
        fired=int(state.get("fired") or 0),
        last_key=state.get("last_key") or None,
        fired_at_ms=int(state["fired_at"]) if state.get("fired_at") else None,
    )
