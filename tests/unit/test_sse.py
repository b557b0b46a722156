"""The wire encodings of streamed messages, byte for byte."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from restmq.core.dispatch import Delivery
from restmq.core.model import HistoryEntry
from restmq.web import sse

pytestmark = pytest.mark.unit


def test_message_object_has_key_and_value_and_count_only_in_lease_mode() -> None:
    delivery = Delivery("q:1", "v", 3)
    assert sse.message_object(delivery) == {"key": "q:1", "value": "v"}
    assert sse.message_object(delivery, lease=True) == {"key": "q:1", "value": "v", "count": 3}
    assert delivery.n == 1
    assert Delivery("a:b:c:42", "v", 1).n == 42


def test_comet_line_is_one_json_object_and_crlf() -> None:
    assert sse.comet_line(Delivery("q:1", "hello", 1)) == b'{"key":"q:1","value":"hello"}\r\n'


def test_comet_line_escapes_newlines_and_keeps_utf8() -> None:
    line = sse.comet_line(Delivery("q:2", 'a\r\nb "c" é', 1))
    assert line == b'{"key":"q:2","value":"a\\r\\nb \\"c\\" \xc3\xa9"}\r\n'
    assert line.count(b"\n") == 1


def test_comet_line_with_callback_is_a_jsonp_call() -> None:
    delivery = Delivery("q:1", "v", 1)
    assert sse.comet_line(delivery, "cb") == b'cb({"key":"q:1","value":"v"});\r\n'
    assert sse.comet_line(delivery, "my.cb_$") == b'my.cb_$({"key":"q:1","value":"v"});\r\n'
    assert sse.comet_line(delivery) == b'{"key":"q:1","value":"v"}\r\n'  # the callback is not cached


def test_lease_mode_deliveries_carry_their_count() -> None:
    delivery = Delivery("q:5", "v", 2, lease=True)
    assert sse.comet_line(delivery) == b'{"key":"q:5","value":"v","count":2}\r\n'
    assert sse.sse_event(delivery) == b'id: q:5\ndata: {"key":"q:5","value":"v","count":2}\n\n'
    assert sse.ws_text(delivery) == '{"key":"q:5","value":"v","count":2}'


def test_sse_event_has_the_key_as_id_and_the_comet_object_as_data() -> None:
    delivery = Delivery("q:7", "multi\nline", 1)
    assert sse.sse_event(delivery) == b'id: q:7\ndata: {"key":"q:7","value":"multi\\nline"}\n\n'


def test_sse_history_event_matches_a_live_event() -> None:
    entry = HistoryEntry("q:7", "multi\nline", 4, 1_700_000_000_000)
    assert sse.sse_history_event(entry) == sse.sse_event(Delivery("q:7", "multi\nline", 4))


def test_sse_named_event_retry_and_heartbeat() -> None:
    gap = sse.sse_named("gap", {"last_event_id": "q:1", "oldest": None})
    assert gap == b'event: gap\ndata: {"last_event_id":"q:1","oldest":null}\n\n'
    assert sse.sse_retry(3000) == b"retry: 3000\n\n"
    assert sse.SSE_HEARTBEAT == b": heartbeat\n\n"


def test_ws_text_is_the_json_object_as_text() -> None:
    assert sse.ws_text(Delivery("q:1", "é", 1)) == '{"key":"q:1","value":"é"}'


def test_encodings_are_made_once_per_delivery_and_format() -> None:
    delivery = Delivery("q:1", "v", 1)
    first = sse.comet_line(delivery), sse.sse_event(delivery), sse.ws_text(delivery)
    again = sse.comet_line(delivery), sse.sse_event(delivery), sse.ws_text(delivery)
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert set(delivery.encoded) == {"json", "comet", "sse", "ws"}


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_ws_frames_are_websockets_own_server_text_frames(size: int) -> None:
    payload = b"y" * size
    one = Frame(Opcode.TEXT, payload).serialize(mask=False)
    assert sse.ws_frames([payload, payload]) == one + one
