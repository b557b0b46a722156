"""Syslog over TCP (RFC 6587): each frame is octet-counted (`<length> <message>`) or ends at a newline, and a
sender may mix the two. A frame starting with a digit is octet-counted; any other, newline-terminated.

`Framer` cuts a connection's bytes into frames, holding at most `max_line` bytes of one: a longer frame is
reported as `OVERSIZE` and skipped (to its length, or to its newline), and a length that is not one as
`MALFORMED`, skipped to the next newline, so that one bad frame never ends the connection.
"""

from __future__ import annotations

from collections.abc import Iterator

MESSAGE, OVERSIZE, MALFORMED = "message", "oversize", "malformed"
MAX_LENGTH_DIGITS = 10  # an octet count longer than this is not one
_SEPARATORS = b"\r\n\x00 "  # between frames: a newline after an octet-counted frame, a C string's NUL


class Framer:
    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._skip = 0  # bytes still to drop of an oversize octet-counted frame
        self._skip_line = False  # dropping up to the next newline

    def feed(self, data: bytes) -> Iterator[tuple[str, bytes]]:
        """The frames `data` completes, each as (MESSAGE, its bytes), (OVERSIZE, b"") or (MALFORMED, its start)."""
        self._buffer += data
        while self._buffer:
            if self._skip or self._skip_line:
                if not self._drop():
                    return
                continue
            first = self._buffer[0]
            if first in _SEPARATORS:
                del self._buffer[0]
            elif 0x30 <= first <= 0x39:
                frame = self._counted()
                if frame is None:
                    return
                yield frame
            else:
                frame = self._line()
                if frame is None:
                    return
                yield frame

    def close(self) -> Iterator[tuple[str, bytes]]:
        """At the end of the connection: its last line even without a newline; a cut-off counted frame is
        MALFORMED."""
        buffer, self._buffer = bytes(self._buffer), bytearray()
        if self._skip or self._skip_line or not buffer.strip(_SEPARATORS):
            return
        if 0x30 <= buffer[0] <= 0x39:
            yield MALFORMED, buffer[:80]
        elif len(line := buffer.rstrip(b"\r\x00")) > self.max_line:
            yield OVERSIZE, b""
        else:
            yield MESSAGE, line

    def _drop(self) -> bool:
        """Drop what is being skipped; whether anything is left to look at."""
        if self._skip:
            dropped = min(self._skip, len(self._buffer))
            del self._buffer[:dropped]
            self._skip -= dropped
        else:
            end = self._buffer.find(b"\n")
            if end < 0:
                self._buffer.clear()
                return False
            del self._buffer[: end + 1]
            self._skip_line = False
        return bool(self._buffer)

    def _counted(self) -> tuple[str, bytes] | None:
        space = self._buffer.find(b" ", 0, MAX_LENGTH_DIGITS + 1)
        digits = bytes(self._buffer[: space if space >= 0 else MAX_LENGTH_DIGITS + 1])
        if space < 0 or not digits.isdigit():
            if len(self._buffer) <= MAX_LENGTH_DIGITS and digits.isdigit():
                return None  # the length is still arriving
            self._skip_line = True
            return MALFORMED, bytes(self._buffer[:80])
        length = int(digits)
        if length > self.max_line:
            del self._buffer[: space + 1]
            self._skip = length
            return OVERSIZE, b""
        if len(self._buffer) < space + 1 + length:
            return None
        frame = bytes(self._buffer[space + 1 : space + 1 + length])
        del self._buffer[: space + 1 + length]
        return MESSAGE, frame.rstrip(b"\r\n")

    def _line(self) -> tuple[str, bytes] | None:
        end = self._buffer.find(b"\n", 0, self.max_line + 2)
        if end < 0:
            if len(self._buffer) > self.max_line + 1:
                self._skip_line = True  # _drop removes it up to its newline, however far that is
                return OVERSIZE, b""
            return None
        frame = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[: end + 1]
        if len(frame) > self.max_line:
            return OVERSIZE, b""
        return MESSAGE, frame
