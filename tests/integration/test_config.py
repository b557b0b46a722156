"""`restmq config` and the option sources (flag > environment > --config file > default), and
`restmq serve` refusing to listen beyond loopback without access control."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.auth import create_token, write_acl
from tests.helpers.netns import network_namespace
from tests.helpers.server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RESTMQ_")}
    return subprocess.run(
        [sys.executable, "-m", "restmq", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**clean, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
    )


def table(output: str) -> dict[str, tuple[str, str]]:
    """`restmq config`'s table as {option: (value, source)}."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 3 and cells[0].startswith("--"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    config = tmp_path / "restmq.toml"
    config.write_text(
        "port = 9000\nmax-body = 1048576\nmax_value = 111\nlog-level = 'warning'\n"
        "cors-origin = ['https://a.example']\nredis = 'redis://10.0.0.5:6379'\n"
    )
    env = {"RESTMQ_PORT": "9100", "RESTMQ_MAX_VALUE": "222", "RESTMQ_MAX_BATCH": "50"}
    result = run("config", "--config", str(config), "--max-value", "333", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert rows["--port"] == ("9100", "environment")  # env beats the file
    assert rows["--max-body"] == ("1048576", "config file")  # the file beats the default
    assert rows["--max-value"] == ("333", "command line")  # the flag beats env and file
    assert rows["--max-batch"] == ("50", "environment")
    assert rows["--log-level"] == ("warning", "config file")
    assert rows["--cors-origin"] == ("https://a.example", "config file")  # keys named like the options
    assert rows["--redis"] == ("redis://10.0.0.5:6379", "config file")
    assert rows["--host"] == ("127.0.0.1", "default")
    assert rows["--max-frame"] == ("1048576", "default")
    assert rows["--config"] == (str(config), "command line")


def test_backend_timeout_is_an_option_with_a_default_of_a_few_seconds(tmp_path: Path) -> None:
    rows = table(run("config", cwd=tmp_path).stdout)
    assert rows["--backend-timeout"] == ("5.0", "default")
    rows = table(run("config", env={"RESTMQ_BACKEND_TIMEOUT": "2.5"}, cwd=tmp_path).stdout)
    assert rows["--backend-timeout"] == ("2.5", "environment")
    refused = run("config", "--backend-timeout", "-1", cwd=tmp_path)
    assert refused.returncode != 0 and "--backend-timeout" in refused.stderr


def test_the_config_file_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "restmq.toml"
    config.write_text("port = 9200\n")
    result = run("config", env={"RESTMQ_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert rows["--port"] == ("9200", "config file") and rows["--config"][1] == "environment"


def test_documented_example(tmp_path: Path) -> None:
    (tmp_path / "restmq.toml").write_text("port = 9000\nmax-body = 1048576\n")
    result = run("config", "--config", "restmq.toml", env={"RESTMQ_PORT": "9100"}, cwd=tmp_path)
    rows = table(result.stdout)
    assert rows["--port"] == ("9100", "environment") and rows["--max-body"] == ("1048576", "config file")


@pytest.mark.parametrize("command", ["config", "serve"])
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = 9000\nmax_bodyy = 5\n", "unknown settings max_bodyy"),
        ("colour = 'blue'\nprot = 1\n", "unknown settings colour, prot"),
        ("port = [\n", "cannot read"),
        ('port = "eighty"\n', "'eighty' is not a valid integer"),
        ("redis = 'redis://127.0.0.1:1'\nbogus = true\n", "unknown settings bogus"),
    ],
)
def test_a_bad_config_file_fails_clearly(tmp_path: Path, command: str, text: str, message: str) -> None:
    config = tmp_path / "restmq.toml"
    config.write_text(text)
    result = run(command, "--config", str(config), "--redis", "redis://127.0.0.1:1", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "restmq-data").exists()  # refused before anything started


def test_a_missing_config_file_fails_clearly(tmp_path: Path) -> None:
    result = run("config", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "cannot read" in result.stderr and "nope.toml" in result.stderr


# -- listening beyond loopback ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "env"])
def test_serve_refuses_a_public_address_without_access_control(redis_url: str, tmp_path: Path, how: str) -> None:
    args = ["serve", "--redis", redis_url, "--port", str(free_port())]
    env = {}
    if how == "flag":
        args += ["--host", "0.0.0.0"]
    else:
        env["RESTMQ_HOST"] = "0.0.0.0"
    result = run(*args, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to listen on 0.0.0.0 without access control" in result.stderr
    assert "--acl" in result.stderr and "--insecure-open" in result.stderr and "restmq token create" in result.stderr


def test_serve_refuses_with_the_embedded_engine_and_leaves_nothing_running(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run("serve", "--data-dir", str(data), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2 and "refusing to listen" in result.stderr, result.stderr
    assert not (data / "valkey.pid").exists()


@pytest.mark.parametrize("how", ["insecure-open", "acl", "tokens", "auth-tokens"])
def test_serve_listens_on_a_public_address_when_told(redis_url: str, tmp_path: Path, how: str) -> None:
    """0.0.0.0 with effective authentication, or with --insecure-open; bound inside a private network namespace."""
    args = ["--redis", redis_url, "--host", "0.0.0.0"]
    if how == "insecure-open":
        args.append("--insecure-open")
    elif how == "acl":
        args += ["--acl", write_acl(tmp_path, "[rest:consumer]\nhosts_allow = 127.0.0.1\n")]
    elif how == "tokens":
        create_token(redis_url, "*", "admin")
    else:
        args += ["--auth", "tokens"]  # no token yet: everything is 401 until one is created
    with network_namespace() as netns:
        server = netns.serve(args, tmp_path, "public")
        try:
            server.wait_ready()
            assert netns.request(server.url + "/q/") == (200 if how in ("insecure-open", "acl") else 401)
        finally:
            server.stop()
    assert server.proc.returncode == 0, server.log()
