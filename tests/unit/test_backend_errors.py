"""Which backend failures are BackendUnavailable (503), as redis-py's own parser reports them (issue 14)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis import exceptions as rexc
from redis._parsers.base import BaseParser

from restmq.errors import BackendUnavailable
from restmq.storage.errors import backend_errors, unavailable

pytestmark = pytest.mark.unit

# redis-py leaves its parser unannotated; this is the signature it has.
_parse_error: Callable[[str], rexc.RedisError] = BaseParser.parse_error

REFUSALS = [
    "MISCONF Errors writing to the AOF file: No space left on device",
    "MISCONF Errors writing to the AOF file: No space left on device script: 7389, on @user_script:1.",
    "OOM command not allowed when used memory > 'maxmemory'.",
    "BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    "LOADING Valkey is loading the dataset in memory",
    "READONLY You can't write against a read only replica.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "NOREPLICAS Not enough good replicas to write.",
    "CLUSTERDOWN The cluster is down",
    "TRYAGAIN Multiple keys request during rehashing of slot",
]
MISTAKES = [
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "ERR Error running script (call to f_1234): @user_script:3: user_script:3: attempt to compare nil with number",
    "ERR unknown command 'NOPE'",
    "NOSCRIPT No matching script. Please use EVAL.",  # the script layer loads it again; never an outage
]


def parsed(reply: str) -> rexc.RedisError:
    """The exception redis-py makes of an error reply."""
    return _parse_error(reply)


@pytest.mark.parametrize("reply", REFUSALS)
def test_a_backend_refusing_for_now_is_unavailable(reply: str) -> None:
    assert unavailable(parsed(reply))
    with pytest.raises(BackendUnavailable) as raised, backend_errors("node-a"):
        raise parsed(reply)
    assert reply.split()[0] in raised.value.message
    assert "node-a" in raised.value.message


def test_a_refusal_reported_by_a_pipeline_is_unavailable() -> None:
    error = parsed("MISCONF Errors writing to the AOF file")
    error.args = (f"Command # 2 (EVALSHA abc 1 k) of pipeline caused error: {error.args}",)
    assert unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        rexc.ConnectionError("Connection refused"),
        rexc.TimeoutError("Timeout reading from socket"),
        rexc.MaxConnectionsError("Too many connections"),
        rexc.AuthenticationError("invalid password"),
        rexc.ClusterDownError("The cluster is down"),
        rexc.SlotNotCoveredError("slot 7 is not covered"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
    ids=type,
)
def test_a_backend_out_of_reach_is_unavailable(error: Exception) -> None:
    assert unavailable(error)
    with pytest.raises(BackendUnavailable), backend_errors("node-a"):
        raise error


@pytest.mark.parametrize("reply", MISTAKES)
def test_an_error_in_what_was_asked_is_not_an_outage(reply: str) -> None:
    error = parsed(reply)
    assert not unavailable(error)
    with pytest.raises(type(error)), backend_errors("node-a"):
        raise error
