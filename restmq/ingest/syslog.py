"""Syslog messages (RFC 5424, and RFC 3164 as senders write it) as the JSON a queue holds. Pure: bytes in,
a `SyslogRecord` out, or `Malformed` saying why; never any other exception, whatever the bytes.

A message is RFC 5424 when a version `1` follows its priority; anything else after a valid priority is read
as RFC 3164 (a BSD timestamp or an RFC 3339 one, then a host name, then `tag[pid]:`), each part optional as
real senders leave them out. Without a valid `<priority>` there is no syslog message: `Malformed`.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
BOM = b"\xef\xbb\xbf"
NIL = "-"

_PRI = re.compile(rb"<([0-9]{1,3})>")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})", re.ASCII
)
_BSD_TIME = re.compile(r"([A-Z][a-z]{2}) ([ 0-9]?[0-9]) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?: |$)", re.ASCII)
_MONTHS = {m: n for n, m in enumerate(("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec").split(), 1)}
_TAG = re.compile(r"([^\s:\[\]]{1,48})(?:\[([^\]\s]{1,128})\])?:(?: |$)")
_HOSTNAME = re.compile(r"[!-~]{1,255}", re.ASCII)  # printable ASCII, no blanks (RFC 5424's PRINTUSASCII)
_SD_NAME = re.compile(r"[!#-<>-Z\\^-~]{1,32}", re.ASCII)  # PRINTUSASCII except = SP ] "
_HEADER_FIELDS = ((255, "host"), (48, "app"), (128, "procid"), (32, "msgid"))


class Malformed(ValueError):
    """Not a syslog message; the text says what is wrong (for the log)."""


@dataclass(frozen=True)
class SyslogRecord:
    """One message: `host` is the host name it names (None when it names none); `fields` the queued JSON."""

    host: str | None
    fields: dict[str, Any]


def parse(raw: bytes, received: datetime.datetime) -> SyslogRecord:
    """One message without its framing (no trailing newline). `received` (aware, UTC) dates BSD timestamps,
    which carry no year."""
    match = _PRI.match(raw)
    if match is None:
        raise Malformed("no <priority> at the start")
    priority = int(match.group(1))
    if priority > 191 or (len(match.group(1)) > 1 and match.group(1).startswith(b"0")):
        raise Malformed(f"priority {match.group(1).decode()} is not 0-191")
    rest = raw[match.end() :]
    base = {
        "facility": FACILITIES[priority >> 3],
        "severity": SEVERITIES[priority & 7],
        "priority": priority,
    }
    if rest.startswith(b"1 "):
        return _rfc5424(rest[2:], base)
    return _rfc3164(rest, base, received)


def _rfc5424(rest: bytes, base: dict[str, Any]) -> SyslogRecord:
    header = rest.split(b" ", 5)
    if len(header) < 6:
        raise Malformed("RFC 5424 header cut short")
    try:
        stamp, host, app, procid, msgid = (part.decode("ascii") for part in header[:5])
    except UnicodeDecodeError:
        raise Malformed("RFC 5424 header is not ASCII") from None
    if stamp != NIL and not _RFC3339.fullmatch(stamp):
        raise Malformed(f"RFC 5424 timestamp {stamp[:40]!r} is not RFC 3339")
    fields = dict(base, protocol="rfc5424", timestamp=None if stamp == NIL else stamp)
    for (limit, name), value in zip(_HEADER_FIELDS, (host, app, procid, msgid), strict=True):
        if not _HOSTNAME.fullmatch(value) or len(value) > limit:
            raise Malformed(f"RFC 5424 {name} field is empty, too long or not printable")
        fields[name] = None if value == NIL else value
    data, message = _structured_data(header[5])
    fields["structured_data"] = data
    fields["message"] = _text(message)
    return SyslogRecord(fields["host"], fields)


def _structured_data(rest: bytes) -> tuple[dict[str, dict[str, Any]] | None, bytes]:
    """STRUCTURED-DATA (`-`, or `[id name="value" ...]` elements) and the message after it. A name repeated
    within an element keeps every value, as a list."""
    if rest == b"" or rest == b"-" or rest.startswith(b"- "):
        return None, rest[2:]
    if not rest.startswith(b"["):
        raise Malformed("RFC 5424 structured data is neither - nor [...]")
    text = rest.decode("utf-8", "surrogateescape")  # the message after it may be any bytes
    elements: dict[str, dict[str, Any]] = {}
    at = 0
    while at < len(text) and text[at] == "[":
        at = _element(text, at + 1, elements)
    if at < len(text) and text[at] != " ":
        raise Malformed("RFC 5424 structured data not followed by a space")
    try:
        text[:at].encode()
    except UnicodeEncodeError:
        raise Malformed("RFC 5424 structured data is not UTF-8") from None
    return elements, text[at + 1 :].encode("utf-8", "surrogateescape")


def _element(text: str, at: int, elements: dict[str, dict[str, Any]]) -> int:
    """One `[id name="value"...]` from just after its `[`; returns the index after its `]`."""
    name = _SD_NAME.match(text, at)
    if name is None:
        raise Malformed("RFC 5424 structured data element without an id")
    params: dict[str, Any] = elements.setdefault(name.group(), {})
    at = name.end()
    while at < len(text) and text[at] == " ":
        param = _SD_NAME.match(text, at + 1)
        if param is None or text[param.end() : param.end() + 2] != '="':
            raise Malformed('RFC 5424 structured data parameter is not name="value"')
        value, at = _quoted(text, param.end() + 2)
        known = params.get(param.group())
        params[param.group()] = value if known is None else [*(known if isinstance(known, list) else [known]), value]
    if at >= len(text) or text[at] != "]":
        raise Malformed("RFC 5424 structured data element not closed by ]")
    return at + 1


def _quoted(text: str, at: int) -> tuple[str, int]:
    """A parameter value from just after its opening quote (\\" \\\\ \\] escaped); the index after its quote."""
    out = []
    while at < len(text):
        char = text[at]
        if char == "\\" and at + 1 < len(text) and text[at + 1] in '"\\]':
            out.append(text[at + 1])
            at += 2
        elif char == '"':
            return "".join(out), at + 1
        else:
            out.append(char)
            at += 1
    raise Malformed("RFC 5424 structured data value without its closing quote")


def _rfc3164(rest: bytes, base: dict[str, Any], received: datetime.datetime) -> SyslogRecord:
    text = _text(rest)
    fields: dict[str, Any] = dict(base, protocol="rfc3164", timestamp=None, host=None)
    stamp = _RFC3339.match(text)
    bsd = None if stamp else _BSD_TIME.match(text)
    if stamp:
        fields["timestamp"], text = stamp.group(), text[stamp.end() :].lstrip(" ")
    elif bsd:
        fields["timestamp"], text = _bsd_timestamp(bsd, received), text[bsd.end() :]
    if stamp or bsd:  # the host name follows the timestamp
        host, space, after = text.partition(" ")
        if space and _HOSTNAME.fullmatch(host) and not host.endswith(":"):
            fields["host"], text = host, after
    tag = _TAG.match(text)
    fields["app"] = tag.group(1) if tag else None
    fields["procid"] = tag.group(2) if tag else None
    fields["msgid"] = None
    fields["structured_data"] = None
    fields["message"] = text[tag.end() :] if tag else text
    return SyslogRecord(fields["host"], fields)


def _bsd_timestamp(match: re.Match[str], received: datetime.datetime) -> str | None:
    """`Mmm dd hh:mm:ss` as ISO 8601 local time (no offset: the sender's zone is unknown), in the year that puts
    it closest before the time it was received (a December message read in January is last year's)."""
    month = _MONTHS.get(match.group(1))
    if month is None:
        return None
    day, hour, minute, second = (int(match.group(n)) for n in range(2, 6))
    for year in (received.year + 1, received.year, received.year - 1):
        try:
            moment = datetime.datetime(year, month, day, hour, minute, second)
        except ValueError:  # Feb 29 of a year without one, hour 25, ...
            continue
        if moment <= received.replace(tzinfo=None) + datetime.timedelta(days=2):
            return moment.isoformat()
    return None


def _text(raw: bytes) -> str:
    """A message's text: UTF-8 (after an optional BOM), undecodable bytes replaced rather than refused."""
    return raw.removeprefix(BOM).decode("utf-8", "replace")
