"""JSON byte for byte as the 2010 server wrote it: Python 2.7's `json.dumps` as cyclone called it.

That is `", "` and `": "` between items, non-ASCII escaped as \\uXXXX, `</` written `<\\/`, and each object's
keys in the order a CPython 2.7 dict iterated them: by the 64-bit string hash, slot by slot in an open-addressed
table of 8, 32, 128... slots. The order depends on the keys (and, only where they collide, on the order they were
inserted); `--compat 2010` replies (restmq/web/compat2010.py) use it so that a 2010 client comparing bodies sees
the same bytes. Checked against Python 2.7: hash("a") == 12416037344, {"a", "b", "c"} iterates a, c, b.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

MASK = (1 << 64) - 1
MIN_SLOTS = 8
PERTURB_SHIFT = 5


def py2_hash(text: str) -> int:
    """CPython 2.7's hash of an ASCII str (or unicode), as the unsigned 64-bit value a dict probes with."""
    data = text.encode()
    if not data:
        return 0
    value = data[0] << 7
    for byte in data:
        value = ((1000003 * value) ^ byte) & MASK
    value ^= len(data)
    return MASK - 1 if value == MASK else value  # -1 is reserved for errors: 2.7 makes it -2


def _place(table: list[str | None], key: str) -> None:
    mask = len(table) - 1
    perturb = index = py2_hash(key)
    while table[index & mask] is not None:
        index = (index << 2) + index + perturb + 1
        perturb >>= PERTURB_SHIFT
    table[index & mask] = key


def dict_order(keys: Iterable[str]) -> list[str]:
    """The keys, inserted in this order into a Python 2.7 dict, in the order the dict iterates them."""
    table: list[str | None] = [None] * MIN_SLOTS
    used = 0
    for key in keys:
        _place(table, key)
        used += 1
        if used * 3 >= len(table) * 2:  # two thirds full: 2.7 resizes to the smallest power of 2 over 4 * used
            size = MIN_SLOTS
            while size <= 4 * used:
                size <<= 1
            old, table = table, [None] * size
            for kept in old:
                if kept is not None:
                    _place(table, kept)
    return [key for key in table if key is not None]


def _ordered(value: object) -> object:
    if isinstance(value, dict):
        # cyclone's json_encode first rebuilt every dict (recursive_unicode): a second insertion, in iteration order
        order = dict_order(dict_order(value))
        return {key: _ordered(value[key]) for key in order}
    if isinstance(value, list | tuple):
        return [_ordered(item) for item in value]
    return value


def dumps(value: object) -> str:
    """`value` (str keys) as cyclone.escape.json_encode wrote it on Python 2.7."""
    return json.dumps(_ordered(value)).replace("</", "<\\/")
