"""The client commands' argument handling and exit codes, in-process (no server needed)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from restmq.cli import main
from restmq.cli._common import EXIT_CONNECT, EXIT_USAGE
from tests.helpers.server import free_port

pytestmark = pytest.mark.unit


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cannot_connect_exits_4_with_one_line(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["get", "q"], ["add", "q", "v"], ["stats"], ["policy", "q"], ["purge", "q", "--yes"]):
        result = runner.invoke(main, [*args, "--url", url, "--timeout", "2"])
        assert result.exit_code == EXIT_CONNECT, (args, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith("restmq: error: cannot connect")


def test_url_comes_from_the_environment(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(main, ["stats"], env={"RESTMQ_URL": url})
    assert result.exit_code == EXIT_CONNECT and url in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["add", "q"],  # neither VALUE nor --file
        ["add", "q", "v", "--file", "x"],  # both
        ["get", "q", "--wait", "61"],
        ["get", "q", "--count", "0"],
        ["get", "q", "--soft", "--lease", "5"],
        ["policy", "q", "sideways"],
        ["control", "q", "pause"],
        ["add", "q", "v", "--priority", "10"],
    ],
)
def test_bad_usage_exits_2(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(main, [*args, "--url", "http://127.0.0.1:1"])
    assert result.exit_code == EXIT_USAGE, result.output


def test_purge_asks_first(runner: CliRunner) -> None:
    result = runner.invoke(main, ["purge", "q", "--url", "http://127.0.0.1:1"], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output


def test_help_documents_exit_codes_and_env(runner: CliRunner) -> None:
    result = runner.invoke(main, ["add", "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 ok" in result.output and "RESTMQ_URL" in result.output and "RESTMQ_TOKEN" in result.output
