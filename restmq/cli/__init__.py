"""The `restmq` command line."""

from __future__ import annotations

import click

from restmq.cli.serve import serve, show_config
from restmq.cli.token import token


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RESTMQ"})
@click.version_option(package_name="restmq")
def main() -> None:
    """RestMQ: a message queue that speaks plain HTTP."""


main.add_command(serve)
main.add_command(show_config)
main.add_command(token)
