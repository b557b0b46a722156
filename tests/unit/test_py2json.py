"""restmq/web/py2json.py writes JSON as the 2010 server's Python 2.7 did (issue 17, --compat 2010)."""

from __future__ import annotations

import pytest

from restmq.web.py2json import dict_order, dumps, py2_hash

pytestmark = pytest.mark.unit


def test_the_hash_is_python_2_7s() -> None:
    assert py2_hash("a") == 12416037344  # hash("a") on a 64-bit Python 2.7
    assert py2_hash("") == 0


def test_a_dict_iterates_in_python_2_7s_order() -> None:
    assert dict_order(["a", "b", "c"]) == ["a", "c", "b"]  # Python 2.7: {'a': 1, 'c': 3, 'b': 2}


def test_colliding_keys_keep_their_insertion_order() -> None:
    # "value" and "key" share a slot of an 8-slot table: whichever comes first keeps it
    assert dict_order(["queue", "value", "key"]) == ["queue", "key", "value"]
    assert dict_order(["queue", "key", "value"]) == ["queue", "value", "key"]


def test_a_table_grows_as_python_2_7s_did() -> None:
    keys = [f"q{n}" for n in range(40)]
    assert sorted(dict_order(keys)) == sorted(keys)
    assert dict_order(keys) != keys


def test_dumps_writes_cyclones_bytes() -> None:
    # cyclone re-inserted every dict before encoding: the 2010 add reply came out queue, value, key
    assert dumps({"queue": "q", "value": "v", "key": "q:1"}) == '{"queue": "q", "value": "v", "key": "q:1"}'
    assert dumps({"stat": "invalid status: </script>é"}) == '{"stat": "invalid status: <\\/script>\\u00e9"}'
    assert dumps({"status": None, "list": [1, {"b": 2, "a": 1}]}) == '{"status": null, "list": [1, {"a": 1, "b": 2}]}'
