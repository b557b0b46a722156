"""The `restmq` command line."""

from __future__ import annotations

import click

from restmq.cli.add import add
from restmq.cli.admin import control, policy, purge, redrive
from restmq.cli.bench import bench
from restmq.cli.import_2010 import import_2010
from restmq.cli.push import push
from restmq.cli.read import ack, get, release, take
from restmq.cli.ring import ring
from restmq.cli.schedule import schedule
from restmq.cli.serve import serve, show_config
from restmq.cli.stats import stats
from restmq.cli.tail import tail
from restmq.cli.token import token


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RESTMQ"})
@click.version_option(package_name="restmq")
def main() -> None:
    """RestMQ: a message queue that speaks plain HTTP."""


main.add_command(serve)
main.add_command(show_config)
main.add_command(token)
main.add_command(import_2010)
main.add_command(ring)
for command in (add, get, take, ack, release, tail, stats, policy, control, purge, redrive, bench):
    main.add_command(command)
main.add_command(push)
main.add_command(schedule)
