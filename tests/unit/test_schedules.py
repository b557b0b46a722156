"""Schedule rules and tick arithmetic (issue 19): interval alignment, cron in a time zone across DST changes (as
docs/schedules.md states them), the catch-up-once rule's latest tick, and refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from redis.crc import key_slot

from restmq.core.schedules import Schedule, iso_tick, parse
from restmq.errors import InvalidParameter, PayloadTooLarge
from restmq.storage.keys import queue_keys, schedule_key

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def cron(expression: str, tz: str, created: datetime) -> Schedule:
    return Schedule("s_0000000000000001", "q", "v", expression, None, tz, ms(created))


def test_interval_ticks_are_aligned_to_the_creation_and_only_the_latest_is_due() -> None:
    every = Schedule("s_0000000000000002", "q", "v", None, 10, "UTC", 1_000_500)
    assert every.latest_tick(1_000_500 + 9_999) is None  # nothing before the first tick
    assert every.latest_tick(1_010_500) == 1_010_500  # a tick exactly now is due
    assert every.latest_tick(1_000_500 + 95_000) == 1_090_500  # nine ticks passed: only the latest
    assert every.next_tick(1_090_500) == 1_100_500
    assert every.next_tick(0) == 1_010_500  # never before the creation


def test_a_cron_tick_keeps_its_local_time_across_dst() -> None:
    daily = cron("0 9 * * *", "America/New_York", datetime(2026, 3, 1, tzinfo=UTC))
    winter = datetime.fromtimestamp(daily.next_tick(ms(datetime(2026, 3, 2, tzinfo=UTC))) / 1000, UTC)
    summer = datetime.fromtimestamp(daily.next_tick(ms(datetime(2026, 3, 20, tzinfo=UTC))) / 1000, UTC)
    assert (winter.hour, summer.hour) == (14, 13)


def test_a_missing_local_time_fires_once_after_it_and_a_repeated_one_twice() -> None:
    spring = cron("30 2 * * *", "Europe/Paris", datetime(2026, 3, 28, 12, tzinfo=PARIS))
    tick = spring.next_tick(spring.created_ms)
    assert datetime.fromtimestamp(tick / 1000, PARIS).isoformat() == "2026-03-29T03:00:00+02:00"
    autumn = cron("30 2 * * *", "Europe/Paris", datetime(2026, 10, 24, 12, tzinfo=PARIS))
    first = autumn.next_tick(autumn.created_ms)
    second = autumn.next_tick(first)
    assert second - first == 3_600_000  # 02:30 summer time, then 02:30 winter time
    assert autumn.latest_tick(second) == second


def test_tick_text() -> None:
    assert iso_tick(ms(datetime(2026, 12, 2, 3, 0, 0, 250_000, tzinfo=UTC))) == "2026-12-02T03:00:00.250Z"


@pytest.mark.parametrize(
    "body",
    [
        {"queue": "q", "value": "v", "cron": "* * * * * *"},
        {"queue": "q", "value": "v", "cron": "@reboot"},
        {"queue": "q", "value": "v", "cron": "* * * * *", "tz": "Europe/Nowhere"},
        {"queue": "q", "value": "v", "cron": "* * * * *", "tz": "/etc/passwd"},
        {"queue": "q", "value": "v", "cron": "* * * * *", "tz": ""},
        {"queue": "q", "value": "v", "every": -1},
        {"queue": "q", "value": "v", "every": float("nan")},
        {"queue": "q", "value": "v", "cron": None, "every": None},
    ],
)
def test_refusals(body: dict[str, object]) -> None:
    with pytest.raises(InvalidParameter):
        parse(body, max_value=100, now_ms=0)


def test_a_value_over_the_limit_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        parse({"queue": "q", "value": "é" * 60, "every": 5}, max_value=100, now_ms=0)


@pytest.mark.parametrize("queue", ["jobs", "jobs:dead", "a.b@c"])
def test_a_schedule_shares_its_queue_hash_slot(queue: str) -> None:
    """The tick claim and the add are one script: on Redis Cluster its keys must share one slot."""
    assert key_slot(schedule_key(queue, "s_0123456789abcdef").encode()) == key_slot(queue_keys(queue).meta.encode())
