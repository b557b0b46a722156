"""The collectd parsers (restmq/ingest/collectd.py): write_http's JSON and Command formats, notifications in its
JSON, PUTNOTIF and NotificationExec text; bad input is InvalidValue (a 400) and nothing else (issue 17)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restmq.errors import InvalidValue
from restmq.ingest.collectd import notifications, value_lists

pytestmark = pytest.mark.unit

LOAD = {
    "values": [5.36, 2.15, 1.36],
    "dstypes": ["gauge", "gauge", "gauge"],
    "dsnames": ["shortterm", "midterm", "longterm"],
    "time": 1796190806.235,
    "interval": 1.0,
    "host": "testhost",
    "plugin": "load",
    "plugin_instance": "",
    "type": "load",
    "type_instance": "",
}


def decoded(texts: list[str]) -> list[dict[str, object]]:
    return [orjson.loads(text) for text in texts]


def test_json_format_gives_one_message_per_value_list() -> None:
    body = orjson.dumps([LOAD, {**LOAD, "plugin": "memory", "type_instance": "used"}])
    assert decoded(value_lists(body, "application/json")) == [
        LOAD,
        {**LOAD, "plugin": "memory", "type_instance": "used"},
    ]


def test_command_format_splits_the_identifier_as_collectd_does() -> None:
    body = b"PUTVAL testhost/cpu-0/cpu-idle interval=10.000 1796190806.235:42\r\nPUTVAL h/load/load 1.5:1:2.5:U\r\n"
    first, second = decoded(value_lists(body, "text/plain"))
    assert first == {
        "values": [42],
        "time": 1796190806.235,
        "interval": 10.0,
        "host": "testhost",
        "plugin": "cpu",
        "plugin_instance": "0",
        "type": "cpu",
        "type_instance": "idle",
    }
    assert second["values"] == [1, 2.5, None] and second["interval"] is None


def test_command_format_takes_quoted_identifiers_several_groups_and_meta() -> None:
    body = b'PUTVAL "my host/exec-a b/gauge" interval=5 meta:rack="r 1" N:1 1000:2\n'
    first, second = decoded(value_lists(body, "text/plain"))
    assert first["host"] == "my host" and first["plugin_instance"] == "a b" and first["meta"] == {"rack": "r 1"}
    assert isinstance(first["time"], float) and second["time"] == 1000.0 and second["values"] == [2]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"hello", "expected a PUTVAL"),
        (b"PUTVAL onlyhost 1:2", "is not host/plugin"),
        (b"PUTVAL h/p/t interval=0 1:2", "interval"),
        (b"PUTVAL h/p/t 1:x", "is not a number"),
        (b"PUTVAL h/p/t later:1", "time"),
        (b"PUTVAL h/p/t interval=1", "PUTVAL without values"),
        (b"PUTVAL h/p/t", "PUTVAL needs"),
        (b"", "no value list"),
        (b"[]", "no JSON object"),
        (b"[1]", "expected a JSON object"),
        (b'[{"host": "h"}]', "notification goes to /collectd/event"),
        (b'{"values": [], "host": 1, "plugin": "p", "type": "t"}', "'host' must be a string"),
        (b"[{", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_value_lists_are_refused_with_a_reason(body: bytes, says: str) -> None:
    with pytest.raises(InvalidValue, match=says):
        value_lists(body, "text/plain")


def test_write_http_notifications_are_kept_as_sent() -> None:
    alert = {"labels": {"alertname": "collectd_load", "severity": "WARNING"}, "annotations": {"summary": "high"}}
    assert decoded(notifications(orjson.dumps([alert, alert]), "text/plain")) == [alert, alert]


def test_putnotif_lines() -> None:
    body = b'PUTNOTIF severity=failure time=1234 host=h plugin=df s:disk="sda 1" message=disk "sda" is full\n'
    (notification,) = decoded(notifications(body, "text/plain"))
    assert notification == {
        "severity": "failure",
        "time": 1234.0,
        "host": "h",
        "plugin": "df",
        "message": 'disk "sda" is full',
        "meta": {"disk": "sda 1"},
    }


def test_notification_exec_text_as_the_2010_examples_posted_it() -> None:
    body = (
        b"Severity: WARNING\nTime: 1288548727.000\nHost: h\nPlugin: df\nPluginInstance: root\nType: df\n"
        b"TypeInstance: boot\nDataSource: used\nCurrentValue: 1.1e+08\n\nHost h, plugin df: above the threshold."
    )
    (notification,) = decoded(notifications(body, "text/plain"))
    assert notification == {
        "severity": "warning",
        "time": 1288548727.0,
        "host": "h",
        "plugin": "df",
        "plugin_instance": "root",
        "type": "df",
        "type_instance": "boot",
        "message": "Host h, plugin df: above the threshold.",
        "meta": {"DataSource": "used", "CurrentValue": "1.1e+08"},
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"PUTNOTIF severity=bad time=1 message=x", "severity must be"),
        (b"PUTNOTIF severity=okay message=x", "time"),
        (b"PUTNOTIF severity=okay time=1", "without message="),
        (b"PUTNOTIF severity=okay time=1 message=x\nPUTVAL h/p/t 1:1", "expected a PUTNOTIF"),
        (b"just words", "expected collectd notification headers"),
        (b"[1]", "expected a JSON object"),
    ],
)
def test_bad_notifications_are_refused_with_a_reason(body: bytes, says: str) -> None:
    with pytest.raises(InvalidValue, match=says):
        notifications(body, "text/plain")


@settings(deadline=None)  # a shared machine's pauses are not the parser's
@given(st.binary(max_size=512), st.sampled_from(["text/plain", "application/json", ""]))
def test_arbitrary_bytes_give_messages_or_a_bad_request(body: bytes, media: str) -> None:
    for parse in (value_lists, notifications):
        try:
            texts = parse(body, media)
        except InvalidValue:
            continue
        assert texts and all(isinstance(orjson.loads(text), dict) for text in texts)


@settings(deadline=None)  # a shared machine's pauses are not the parser's
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=40), max_size=8))
def test_arbitrary_command_lines_never_raise_anything_else(words: list[str]) -> None:
    line = " ".join(["PUTVAL", *words]).encode()
    for parse in (value_lists, notifications):
        try:
            parse(line, "text/plain")
        except InvalidValue:
            pass
