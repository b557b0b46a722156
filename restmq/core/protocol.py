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
from restmq.core.names import check_queue_name
from restmq.core.service import AddOptions, QueueService
from restmq.errors import InvalidJSON, InvalidParameter, MissingField

EMPTY = {"error": "empty queue", "code": "QUEUE_EMPTY"}
STOPPED = {"error": "queue stopped", "code": "QUEUE_STOPPED"}


def parse_command(raw: str | bytes) -> dict[str, Any]:
    try:
        command = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"malformed JSON: {exc}") from exc
    if not isinstance(command, dict):
        raise InvalidJSON('a command must be a JSON object such as {"cmd": "take", "queue": "q"}')
    return command


def _field(command: dict[str, Any], name: str) -> Any:
    if name not in command or command[name] is None:
        raise MissingField(f"missing field {name!r}")
    return command[name]


def _text(command: dict[str, Any], name: str) -> str:
    value = _field(command, name)
    if not isinstance(value, str):
        raise InvalidParameter(f"field {name!r} must be a string")
    return value


def _number(command: dict[str, Any], name: str, default: float = 0.0) -> float:
    value = command.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameter(f"field {name!r} must be a number")
    return float(value)


RIGHTS = {
    "add": "write",
    "get": "read",
    "take": "read",
    "del": "read",
    "ack": "read",
    "release": "read",
    "extend": "read",
}


def target(command: dict[str, Any]) -> tuple[str, str]:
    """The queue a command acts on (validated) and the right it needs."""
    cmd = command.get("cmd")
    if cmd not in RIGHTS:
        raise InvalidParameter(f"unknown cmd {cmd!r}: use {', '.join(RIGHTS)}")
    return check_queue_name(_text(command, "queue")), RIGHTS[cmd]


async def execute(service: QueueService, command: dict[str, Any]) -> dict[str, Any]:
    cmd = command.get("cmd")
    queue = _text(command, "queue")
    if cmd == "add":
        value = _field(command, "value")
        idempotency_key = command.get("id")
        if idempotency_key is not None and not isinstance(idempotency_key, str):
            raise InvalidParameter("field 'id' (idempotency key) must be a string")
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        options = AddOptions(
            priority=int(_number(command, "priority")),
            delay=_number(command, "delay"),
            ttl=_number(command, "ttl"),
            idempotency_key=idempotency_key,
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
        if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
            raise InvalidParameter("field 'count' must be an integer")
        count = await service.settle(queue, key, action, expected_count=expected, seconds=seconds)
        return {"queue": queue, "key": key, "count": count, "status": action.value}
    raise InvalidParameter(f"unknown cmd {cmd!r}: use add, get, take, del, ack, release or extend")
