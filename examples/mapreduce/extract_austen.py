"""How pride-and-prejudice.txt was made: Jane Austen's novels as Project Gutenberg transcribed them ship in
Debian's r-cran-janeaustenr package as an R lazy-load database; this reads one novel out of it.

    apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb austen
    python examples/mapreduce/extract_austen.py austen/usr/lib/R/site-library/janeaustenr/data/Rdata \\
        prideprejudice > examples/mapreduce/pride-and-prejudice.txt

It understands just enough of R's serialization format (XDR, version 2 or 3) for a named list of
character vectors. Run it without a name to list the novels.
"""

from __future__ import annotations

import gzip
import struct
import sys
import zlib
from typing import Any

NIL, SYMBOL, PAIRLIST, CHARS, LOGICALS, INTEGERS, REALS, STRINGS, LIST, REF = 254, 1, 2, 9, 10, 13, 14, 16, 19, 255
ENVIRONMENTS = (242, 251, 253)  # empty, base and global: no content


class Reader:
    def __init__(self, data: bytes) -> None:
        if data[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.data, self.at, self.refs = data, 2, []
        version = self.int()
        self.int(), self.int()  # writer and minimal reader versions
        if version == 3:
            skip = self.int()  # the length of the native encoding's name, then the name
            self.at += skip

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.at)
        self.at += 4
        return int(value)

    def object(self) -> Any:
        flags = self.int()
        kind, has_attributes, has_tag = flags & 0xFF, flags & 0x200, flags & 0x400
        if kind == NIL or kind in ENVIRONMENTS:
            return None
        if kind == REF:
            return self.refs[(flags >> 8) - 1]
        if kind == SYMBOL:
            self.refs.append(self.object())
            return self.refs[-1]
        if kind == CHARS:
            length = self.int()
            if length == -1:
                return None
            self.at += length
            return self.data[self.at - length : self.at].decode("utf-8")
        if kind == PAIRLIST:
            items = {}
            while kind == PAIRLIST:
                if has_attributes:
                    self.object()
                tag = self.object() if has_tag else None
                items[tag] = self.object()
                flags = self.int()
                kind, has_attributes, has_tag = flags & 0xFF, flags & 0x200, flags & 0x400
            return items
        if kind not in (STRINGS, LIST, INTEGERS, LOGICALS, REALS):
            raise ValueError(f"R type {kind} is not supported")
        length = self.int()
        if kind in (INTEGERS, LOGICALS):
            values: list[Any] = list(struct.unpack_from(f">{length}i", self.data, self.at))
            self.at += 4 * length
        elif kind == REALS:
            values = list(struct.unpack_from(f">{length}d", self.data, self.at))
            self.at += 8 * length
        else:
            values = [self.object() for _ in range(length)]
        attributes = self.object() if has_attributes else None
        if kind == LIST and attributes and "names" in attributes:
            return dict(zip(attributes["names"], values, strict=True))
        return values


def entry(raw: bytes) -> bytes:
    """One lazy-load database entry: a 4-byte length, then zlib (or a type byte and its compression)."""
    if raw[4:5] == b"Z":
        return zlib.decompress(raw[5:])
    return zlib.decompress(raw[4:])


def main() -> None:
    base = sys.argv[1]
    with open(base + ".rdx", "rb") as index_file, open(base + ".rdb", "rb") as db_file:
        index, db = Reader(gzip.decompress(index_file.read())).object(), db_file.read()
    novels = index["variables"]
    if len(sys.argv) < 3:
        print(" ".join(novels))
        return
    offset, length = novels[sys.argv[2]]
    lines = Reader(entry(db[offset : offset + length])).object()
    sys.stdout.write("\n".join(line or "" for line in lines) + "\n")


if __name__ == "__main__":
    main()
