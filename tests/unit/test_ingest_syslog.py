"""The syslog parser (restmq/ingest/syslog.py) and TCP framing (restmq/ingest/framing.py): RFC 5424, RFC 3164 as
senders write it, RFC 6587 octet counting and newline framing; whatever the bytes, a record or `Malformed`, and
frames or counted problems (issue 17)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restmq.ingest.framing import MALFORMED, MESSAGE, OVERSIZE, Framer
from restmq.ingest.syslog import Malformed, parse

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 1, 3, 12, 0, 0, tzinfo=datetime.UTC)


def test_rfc5424_with_structured_data() -> None:
    raw = (
        b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [exampleSDID@32473 iut="3" '
        b'eventSource="Appli\\"cation" eventID="1011"][examplePriority@32473 class="high"] '
        b"\xef\xbb\xbfAn application event"
    )
    record = parse(raw, NOW)
    assert record.host == "mymachine.example.com"
    assert record.fields == {
        "facility": "local4",
        "severity": "notice",
        "priority": 165,
        "protocol": "rfc5424",
        "timestamp": "2003-10-11T22:14:15.003Z",
        "host": "mymachine.example.com",
        "app": "evntslog",
        "procid": "42",
        "msgid": "ID47",
        "structured_data": {
            "exampleSDID@32473": {"iut": "3", "eventSource": 'Appli"cation', "eventID": "1011"},
            "examplePriority@32473": {"class": "high"},
        },
        "message": "An application event",
    }


def test_rfc5424_nil_values_and_repeated_parameters() -> None:
    record = parse(b'<34>1 - - - - - [a@1 x="1" x="2"]', NOW)
    assert record.host is None
    assert record.fields["timestamp"] is None and record.fields["app"] is None and record.fields["message"] == ""
    assert record.fields["structured_data"] == {"a@1": {"x": ["1", "2"]}}
    assert parse(b"<34>1 - host app - - - the message", NOW).fields["message"] == "the message"


def test_rfc3164_as_logger_writes_it() -> None:
    record = parse(b"<13>Jan  3 11:59:58 web-1 cron[4880]: job done", NOW)
    assert record.host == "web-1"
    assert record.fields == {
        "facility": "user",
        "severity": "notice",
        "priority": 13,
        "protocol": "rfc3164",
        "timestamp": "2026-01-03T11:59:58",
        "host": "web-1",
        "app": "cron",
        "procid": "4880",
        "msgid": None,
        "structured_data": None,
        "message": "job done",
    }


def test_rfc3164_december_read_in_january_is_last_year() -> None:
    assert parse(b"<13>Dec 31 23:59:59 h app: x", NOW).fields["timestamp"] == "2025-12-31T23:59:59"


def test_rfc3164_without_timestamp_or_host_and_with_an_rfc3339_stamp() -> None:
    bare = parse(b"<13>postfix/smtpd[12]: connect", NOW)
    assert bare.host is None and bare.fields["app"] == "postfix/smtpd" and bare.fields["message"] == "connect"
    assert parse(b"<13>no tag here", NOW).fields["message"] == "no tag here"
    stamped = parse(b"<13>2026-01-03T11:00:00+01:00 h sshd: hi", NOW)
    assert stamped.fields["timestamp"] == "2026-01-03T11:00:00+01:00" and stamped.host == "h"


def test_undecodable_message_bytes_are_replaced_not_refused() -> None:
    assert parse(b"<13>1 - h a - - - caf\xe9", NOW).fields["message"] == "caf\ufffd"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"no priority", "no <priority>"),
        (b"<192>x", "not 0-191"),
        (b"<013>x", "not 0-191"),
        (b"<13>1 2003-10-11 h a p m -", "not RFC 3339"),
        (b"<13>1 - h a p", "cut short"),
        (b"<13>1 - h a p m [x", "not closed"),
        (b'<13>1 - h a p m [x y="1', "closing quote"),
        (b"<13>1 - h a p m [x y=1]", 'not name="value"'),
        (b"<13>1 - h a p m junk", "neither - nor"),
        (b"<13>1 - h\xff a p m -", "not ASCII"),
        (b"<13>1 -  a p m -", "empty, too long"),
    ],
)
def test_malformed_messages_say_why(raw: bytes, says: str) -> None:
    with pytest.raises(Malformed, match=says):
        parse(raw, NOW)


@settings(deadline=None)  # a shared machine's pauses are not the parser's
@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_a_record_or_malformed(raw: bytes) -> None:
    try:
        record = parse(raw, NOW)
    except Malformed:
        return
    assert isinstance(record.fields["message"], str)


@settings(deadline=None)  # a shared machine's pauses are not the parser's
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_a_priority_never_raise_anything_else(rest: bytes) -> None:
    for head in (b"<13>", b"<13>1 ", b"<13>1 - h a p m ["):
        try:
            parse(head + rest, NOW)
        except Malformed:
            pass


def frames(framer: Framer, *chunks: bytes) -> list[tuple[str, bytes]]:
    found = [frame for chunk in chunks for frame in framer.feed(chunk)]
    return found + list(framer.close())


def test_newline_and_octet_counted_frames_mix_and_split_anywhere() -> None:
    stream = b"<13>one\r\n11 <13>two\nxx\n<13>three"
    expected = [(MESSAGE, b"<13>one"), (MESSAGE, b"<13>two\nxx"), (MESSAGE, b"<13>three")]
    assert frames(Framer(100), stream) == expected
    assert frames(Framer(100), *[stream[i : i + 1] for i in range(len(stream))]) == expected


def test_oversize_frames_are_skipped_and_reading_goes_on() -> None:
    framer = Framer(8)
    assert frames(framer, b"<13>" + b"x" * 20 + b"\n<13>ok\n20 " + b"y" * 20 + b"<13>ok2\n") == [
        (OVERSIZE, b""),
        (MESSAGE, b"<13>ok"),
        (OVERSIZE, b""),
        (MESSAGE, b"<13>ok2"),
    ]


def test_a_long_line_in_pieces_is_one_oversize_frame() -> None:
    assert frames(Framer(8), b"<13>" + b"x" * 10, b"x" * 10, b"x\n<13>ok\n") == [(OVERSIZE, b""), (MESSAGE, b"<13>ok")]


def test_a_bad_octet_count_is_malformed_up_to_the_newline() -> None:
    assert frames(Framer(100), b"12x34 junk\n<13>ok\n") == [(MALFORMED, b"12x34 junk\n<13>ok\n"), (MESSAGE, b"<13>ok")]
    assert frames(Framer(100), b"5 <13") == [(MALFORMED, b"5 <13")]  # cut off by the end of the connection


@settings(deadline=None)  # a shared machine's pauses are not the parser's
@given(st.lists(st.binary(max_size=64), max_size=20), st.integers(1, 64))
def test_arbitrary_chunks_give_bounded_frames(chunks: list[bytes], max_line: int) -> None:
    for kind, frame in frames(Framer(max_line), *chunks):
        assert kind in (MESSAGE, OVERSIZE, MALFORMED)
        assert kind != MESSAGE or len(frame) <= max_line
