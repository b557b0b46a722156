"""The JSON protocol of POST /queue and WebSocket frames: {"cmd": ..., ...} -> reply dict.

Commands: add {queue,value} -> {queue,value,key}; get {queue} -> soft get {queue,value,key,count};
take {queue} -> {queue,value,key,count}; del {queue,key} -> {queue,key,deleted};
ack / release / extend {queue,key[,count][,delay|lease]} -> {queue,key,count,status}.
An empty queue answers {"error": "empty queue"}.
"""

from __future__ import annotations

from typing import Any

import orjson

from restmq.core.model import PopMode, SettleAction
from restmq.core.names import MAX_PRIORITY, check_queue_name
from restmq.core.service import AddOptions, QueueService
from restmq.errors import InvalidJSON, InvalidParameter, MissingField

EMPTY = {"error": "empty queue", "code": "QUEUE_EMPTY"}
STOPPED = {"error": "queue stopped", "code": "QUEUE_STOPPED"}


RIGHTS = {
    "add": "write",
    "get": "read",
    "take": "read",
    "del": "read",
    "ack": "read",
    "release": "read",
    "extend": "read",
}
TEXT_FIELDS = ("queue", "key", "id", "group")  # strings (null: absent)
SECONDS_FIELDS = ("delay", "ttl", "lease")  # numbers (null: absent)
MAX_COUNT = 2**53  # a delivery count: any integer JSON numbers hold exactly


def parse_command(raw: str | bytes) -> dict[str, Any]:
    """The command of one request body or WebSocket frame, every field of it type-checked: a wrong type
    anywhere is a 400 here, before authorization, never an error further on."""
    command = load_command(raw)
    check_fields(command)
    return command


def load_command(raw: str | bytes) -> dict[str, Any]:
    """A JSON object, its fields not checked yet (check_fields does)."""
    try:
        command = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"malformed JSON: {exc}") from exc
    if not isinstance(command, dict):
        raise InvalidJSON('a command must be a JSON object such as {"cmd": "take", "queue": "q"}')
    return command


def check_fields(command: dict[str, Any]) -> None:
    cmd = command.get("cmd")
    if not isinstance(cmd, str) or cmd not in RIGHTS:
        shown = repr(cmd[:40] if isinstance(cmd, str) else cmd) if _is_scalar(cmd) else _kind(cmd)
        raise InvalidParameter(f"unknown cmd {shown}: use {', '.join(RIGHTS)}")
    for name in TEXT_FIELDS:
        if command.get(name) is not None and not isinstance(command[name], str):
            raise InvalidParameter(f"field {name!r} must be a string, not {_kind(command[name])}")
    for name in SECONDS_FIELDS:
        value = command.get(name)
        if value is not None and not _is_number(value):
            raise InvalidParameter(f"field {name!r} must be a number of seconds, not {_kind(value)}")
    _check_whole(command, "priority", 0, MAX_PRIORITY)
    _check_whole(command, "count", 0, MAX_COUNT)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_whole(command: dict[str, Any], name: str, low: int, high: int) -> None:
    value = command.get(name)
    if value is None:
        return
    if not _is_number(value) or not float(value).is_integer() or not low <= value <= high:
        raise InvalidParameter(f"field {name!r} must be an integer from {low} to {high}")


def _kind(value: object) -> str:
    """A JSON type name for error messages (never the value itself: it may be large)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _field(command: dict[str, Any], name: str) -> Any:
    if name not in command or command[name] is None:
        raise MissingField(f"missing field {name!r}")
    return command[name]


def _text(command: dict[str, Any], name: str) -> str:
    value = _field(command, name)
    if not isinstance(value, str):
        raise InvalidParameter(f"field {name!r} must be a string")
    return value


def _number(command: dict[str, Any], name: str) -> float:
    value = command.get(name)
    return 0.0 if value is None else float(value)  # checked by check_fields


def target(command: dict[str, Any]) -> tuple[str, str]:
    """The queue a command from parse_command acts on (validated) and the right it needs."""
    return check_queue_name(_text(command, "queue")), RIGHTS[command["cmd"]]


async def execute(service: QueueService, command: dict[str, Any]) -> dict[str, Any]:
    cmd = command.get("cmd")
    queue = _text(command, "queue")
    if cmd == "add":
        value = _field(command, "value")
        idempotency_key = command.get("id")
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        options = AddOptions(
            priority=int(_number(command, "priority")),
            delay=_number(command, "delay"),
            ttl=_number(command, "ttl"),
            idempotency_key=idempotency_key,
            group=command.get("group"),  # message groups (docs/semantics.md)
        )
        result = await service.add(queue, [text], options)
        return {"queue": queue, "value": value, "key": result.keys(queue)[0]}
    if cmd in ("get", "take"):
        mode = PopMode.PEEK if cmd == "get" else PopMode.TAKE
        popped = await service.get(queue, mode=mode)
        if popped.stopped:
            return dict(STOPPED)
        if not popped.messages:
            return dict(EMPTY)
        message = popped.messages[0]
        return {"queue": queue, "value": message.value, "key": message.key, "count": message.count}
    if cmd == "del":
        key = _text(command, "key")
        return {"queue": queue, "key": key, "deleted": await service.delete_message(queue, key)}
    if cmd in ("ack", "release", "extend"):
        key = _text(command, "key")
        action = SettleAction(cmd)
        seconds = _number(command, "lease" if action is SettleAction.EXTEND else "delay")
        expected = command.get("count")
        count = await service.settle(
            queue, key, action, expected_count=None if expected is None else int(expected), seconds=seconds
        )
        return {"queue": queue, "key": key, "count": count, "status": action.value}
    raise InvalidParameter(f"unknown cmd {cmd!r}: use add, get, take, del, ack, release or extend")
