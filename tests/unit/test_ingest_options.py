"""The ingest options of `restmq serve` (restmq/cli/ingest.py): checked before anything starts (issue 17)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from restmq.cli import main

pytestmark = pytest.mark.unit

BACKEND = ["--redis", "redis://127.0.0.1:1"]  # never reached: every case is refused before the backend


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--collectd-data-queue", "bad/name"], "--collectd-data-queue: invalid queue name"),
        (["--collectd-event-queue", ""], "--collectd-event-queue: invalid queue name"),
        (["--syslog-queue-prefix", "sys log:"], "--syslog-queue-prefix: invalid queue name"),
        (["--syslog-allow", "10.0.0.0/8,nope"], "'nope' is not an address or CIDR network"),
        (["--syslog-max-line", "100"], "--syslog-max-line"),
        (["--syslog-max-line", "4096", "--max-value", "2048"], "at most --max-value (2048)"),
        (["--syslog-port", "70000"], "--syslog-port"),
        (["--syslog-port", "5514", "--syslog-host", "0.0.0.0"], "name the senders with --syslog-allow"),
    ],
)
def test_bad_ingest_options_stop_start_up_with_the_reason(options: list[str], says: str) -> None:
    result = CliRunner().invoke(main, ["serve", *BACKEND, *options])
    assert result.exit_code == 2, result.output
    assert says in result.output
