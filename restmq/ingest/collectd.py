"""What collectd's write_http plugin posts, as queue messages: one JSON text per value list or notification.

Value lists (`POST /collectd/data`) come as `Format "JSON"` (an array of collectd's value-list objects) or
`Format "Command"` (`PUTVAL <identifier> [interval=S] <time>:<value>[:<value>...]` lines). Each becomes one
message holding the value list as collectd's JSON format describes it; a PUTVAL line has no data-source names or
types (those live in collectd's types.db), so its message has neither.

Notifications (`POST /collectd/event`) come as write_http's JSON (an array of objects, whatever its `Format`),
as `PUTNOTIF` lines (the exec and unixsock command), or as the text the exec plugin's NotificationExec hands
its script (`Key: value` headers, a blank line, the message), which is what the 2010 examples posted.

Pure functions: bytes in, JSON texts out, `InvalidValue` (400) naming what is wrong.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

import orjson

from restmq.errors import InvalidValue

JSON_MEDIA = ("application/json", "application/x-ndjson")
_IDENTITY = ("host", "plugin", "plugin_instance", "type", "type_instance")
_NOTIFICATION_FIELDS = ("severity", "time", "host", "plugin", "plugin_instance", "type", "type_instance", "message")
# The exec plugin's header names (NotificationExec) for the fields a PUTNOTIF names in lower case.
_EXEC_HEADERS = {
    "severity": "severity",
    "time": "time",
    "host": "host",
    "plugin": "plugin",
    "plugininstance": "plugin_instance",
    "type": "type",
    "typeinstance": "type_instance",
}
# One token of a command line: a quoted string (backslash escapes), possibly after key=, or a run of non-blanks.
_TOKEN = re.compile(r'[^\s"]*"(?:[^"\\]|\\.)*"|\S+')  # key="quoted value", "quoted", or bare
_OPTION = re.compile(r'([A-Za-z_][A-Za-z0-9_:]*)=("(?:[^"\\]|\\.)*"|\S*)')
_ESCAPE = re.compile(r"\\(.)")
MAX_LINES = 100_000  # lines of one body looked at; a body is bounded by --max-body anyway


def value_lists(body: bytes, media_type: str) -> list[str]:
    """The value lists in a write_http body, each as its own JSON text."""
    if _is_json(body, media_type):
        return [_encode(_checked_value_list(item, n)) for n, item in enumerate(_json_array(body), 1)]
    texts: list[str] = []
    for number, line in _lines(body):
        command, _, rest = line.partition(" ")
        if command.upper() != "PUTVAL":
            raise InvalidValue(f'line {number}: expected a PUTVAL command (collectd Format "Command"), got {command!r}')
        texts.extend(_encode(item) for item in _putval(rest, number))
    return _non_empty(texts, "value list")


def notifications(body: bytes, media_type: str) -> list[str]:
    """The notifications in a body posted to the event route, each as its own JSON text."""
    if _is_json(body, media_type):
        texts = []
        for number, item in enumerate(_json_array(body), 1):
            if not isinstance(item, dict):
                raise InvalidValue(f"notification {number}: expected a JSON object")
            texts.append(_encode(item))
        return _non_empty(texts, "notification")
    lines = list(_lines(body))
    if lines and lines[0][1].split(" ", 1)[0].upper() == "PUTNOTIF":
        found = []
        for number, line in lines:
            command, _, rest = line.partition(" ")
            if command.upper() != "PUTNOTIF":
                raise InvalidValue(f"line {number}: expected a PUTNOTIF command, got {command!r}")
            found.append(_encode(_putnotif(rest, number)))
        return found
    return [_encode(_exec_notification(_text(body)))]


def _is_json(body: bytes, media_type: str) -> bool:
    return media_type in JSON_MEDIA or body.lstrip()[:1] in (b"[", b"{")


def _text(body: bytes) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise InvalidValue("the body is not UTF-8 text") from None


def _json_array(body: bytes) -> list[Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidValue(f"the body is not JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    return _non_empty(items, "JSON object")


def _non_empty(items: list[Any], what: str) -> list[Any]:
    if not items:
        raise InvalidValue(f"no {what} in the body")
    return items


def _lines(body: bytes) -> Iterator[tuple[int, str]]:
    """The body's non-blank lines, numbered from 1 (collectd ends them with CRLF)."""
    for number, line in enumerate(_text(body).splitlines()[:MAX_LINES], 1):
        stripped = line.strip()
        if stripped:
            yield number, stripped


def _encode(item: dict[str, Any]) -> str:
    return orjson.dumps(item).decode()


def _checked_value_list(item: Any, number: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidValue(f"value list {number}: expected a JSON object")
    if not isinstance(item.get("values"), list):
        raise InvalidValue(f'value list {number}: no "values" array; a notification goes to /collectd/event')
    for name in ("host", "plugin", "type"):
        if not isinstance(item.get(name), str):
            raise InvalidValue(f"value list {number}: {name!r} must be a string")
    return item


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return _ESCAPE.sub(r"\1", token[1:-1])
    return token


def _identity(identifier: str, number: int) -> dict[str, str]:
    """host/plugin[-instance]/type[-instance], as collectd splits it (each instance after the first hyphen)."""
    parts = identifier.split("/")
    if len(parts) != 3 or not all(parts):
        raise InvalidValue(f"line {number}: identifier {identifier!r} is not host/plugin[-instance]/type[-instance]")
    host, plugin, kind = parts
    plugin, _, plugin_instance = plugin.partition("-")
    kind, _, type_instance = kind.partition("-")
    return dict(zip(_IDENTITY, (host, plugin, plugin_instance, kind, type_instance), strict=True))


def _number(text: str, number: int) -> float | int | None:
    """A value: an integer (counter, derive, absolute), a float (gauge), or U (undefined) as null."""
    if text == "U":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise InvalidValue(f"line {number}: {text!r} is not a number") from None
    return value if math.isfinite(value) else None


def _putval(rest: str, number: int) -> Iterator[dict[str, Any]]:
    """PUTVAL's arguments: one value list per value group; an option applies to the groups after it."""
    tokens = _TOKEN.findall(rest)
    if len(tokens) < 2:
        raise InvalidValue(f"line {number}: PUTVAL needs an identifier and values")
    identity = _identity(_unquote(tokens[0]), number)
    interval: float | None = None
    meta: dict[str, str] = {}
    groups = 0
    for token in tokens[1:]:
        key, equals, value = token.partition("=")
        if equals:
            if key == "interval":
                interval = _positive(value, number)
            elif key.startswith("meta:"):
                meta[key[5:]] = _unquote(value)
            continue  # other options are ignored, as collectd does
        stamp, *values = token.split(":")
        if not values:
            raise InvalidValue(f"line {number}: {token!r} is not <time>:<value>[:<value>...]")
        groups += 1
        item: dict[str, Any] = {"values": [_number(v, number) for v in values], "time": _time(stamp, f"line {number}")}
        item["interval"] = interval
        item.update(identity)
        if meta:
            item["meta"] = dict(meta)
        yield item
    if not groups:
        raise InvalidValue(f"line {number}: PUTVAL without values")


def _positive(text: str, number: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value > 0):
        raise InvalidValue(f"line {number}: interval={text!r} is not a positive number of seconds")
    return value


def _time(text: str, where: str) -> float:
    """Seconds since the epoch; N is now (the time the server read it)."""
    if text == "N":
        return round(time.time(), 3)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise InvalidValue(f"{where}: time {text!r} is not N or seconds since the epoch")
    return value


def _putnotif(rest: str, number: int) -> dict[str, Any]:
    """PUTNOTIF's options; message= takes the rest of the line. severity, time and message are required."""
    head, found, message = rest.partition("message=")
    if not found:
        raise InvalidValue(f"line {number}: PUTNOTIF without message=")
    notification: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for key, value in _OPTION.findall(head):
        if key in _NOTIFICATION_FIELDS:
            notification[key] = _unquote(value)
        elif ":" in key:  # type:key=value, user meta data (s: a string)
            meta[key.split(":", 1)[1]] = _unquote(value)
    notification["message"] = _unquote(message.strip())
    return _checked_notification(notification, meta, f"line {number}")


def _checked_notification(notification: dict[str, Any], meta: dict[str, str], where: str) -> dict[str, Any]:
    severity = str(notification.get("severity", "")).lower()
    if severity not in ("failure", "warning", "okay"):
        raise InvalidValue(f"{where}: severity must be failure, warning or okay")
    notification["severity"] = severity
    notification["time"] = _time(str(notification.get("time", "")), where)
    if meta:
        notification["meta"] = meta
    return notification


def _exec_notification(text: str) -> dict[str, Any]:
    """NotificationExec's text: `Key: value` lines, a blank line, then the message."""
    head, _, message = text.replace("\r\n", "\n").partition("\n\n")
    notification: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for line in head.splitlines()[:MAX_LINES]:
        key, colon, value = line.partition(":")
        if not colon:
            raise InvalidValue(
                "expected collectd notification headers (Severity: ..., Time: ...) or PUTNOTIF lines, "
                f"got {line[:80]!r}"
            )
        name = key.strip().lower()
        if name in _EXEC_HEADERS:
            notification[_EXEC_HEADERS[name]] = value.strip()
        else:
            meta[key.strip()] = value.strip()
    notification["message"] = message.strip()
    return _checked_notification(notification, meta, "notification")
