"""Fixtures shared by the SQS test modules: one `restmq serve` per module (its own embedded engine), and a boto3
client for it. A module adds server options with a module-level `SQS_SERVER_ARGS` list."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.server import ServeProcess, serve
from tests.helpers.sqs import sqs_client


@pytest.fixture(scope="module")
def sqs_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data = tmp_path_factory.mktemp("sqs")
    extra = list(getattr(request.module, "SQS_SERVER_ARGS", []))
    with serve(["--data-dir", str(data / "data"), *extra], data) as process:
        yield process


@pytest.fixture
def sqs(sqs_server: ServeProcess) -> Any:
    return sqs_client(sqs_server.url)
