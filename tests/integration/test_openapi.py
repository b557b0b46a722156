"""The API descriptions stay true: /openapi.json covers exactly the Starlette route table, /asyncapi.json
every streaming channel, /docs renders them, and schemathesis finds no 5xx against a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route, WebSocketRoute

from restmq.storage.engine import EmbeddedEngine
from restmq.web.openapi import asyncapi, openapi, render_docs
from restmq.web.routes import routes
from tests.helpers.server import ServeProcess, serve

pytestmark = pytest.mark.integration

METHODS = {"get", "post", "put", "patch", "delete"}
STREAMING = {"/c/{queue}", "/sse/{queue}"}  # they never end: covered by the streaming tests instead


def route_table() -> set[tuple[str, str]]:
    table = set()
    for route in routes:
        if isinstance(route, Route):
            assert route.methods is not None
            table |= {(route.path, method.lower()) for method in route.methods if method != "HEAD"}
    return table


def described() -> set[tuple[str, str]]:
    return {(path, method) for path, item in openapi()["paths"].items() for method in item if method in METHODS}


def test_openapi_paths_and_methods_match_the_route_table() -> None:
    table, spec = route_table(), described()
    assert table - spec == set(), "routes without an OpenAPI description (add them to restmq/web/openapi.py)"
    assert spec - table == set(), "OpenAPI describes routes that do not exist"


def test_every_websocket_route_is_an_asyncapi_channel() -> None:
    channels = set(asyncapi()["channels"])
    websockets = {route.path for route in routes if isinstance(route, WebSocketRoute)}
    assert websockets and websockets <= channels
    assert STREAMING <= channels


def test_path_parameters_are_declared() -> None:
    for path, item in openapi()["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method in METHODS & set(item):
            declared = {resolve(p)["name"] for p in [*item.get("parameters", []), *item[method].get("parameters", [])]}
            assert names <= declared, f"{method.upper()} {path}"
            assert item[method]["responses"], f"{method.upper()} {path}"


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target: Any = openapi()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return dict(target)
    return node


def test_error_schema_is_the_server_error_shape() -> None:
    error = openapi()["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "code"]


async def test_descriptions_are_served(http: httpx.AsyncClient) -> None:
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200 and spec.headers["content-type"].startswith("application/json")
    assert spec.json()["openapi"] == "3.1.0" and spec.json()["paths"].keys() == openapi()["paths"].keys()
    channels = await http.get("/asyncapi.json")
    assert channels.status_code == 200 and channels.json()["asyncapi"].startswith("2.6")
    page = await http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "http://" not in page.text.replace('href="/', "")  # no CDN: offline-safe
    for path in openapi()["paths"]:
        assert f"{path}<" in page.text.replace("&#x27;", "'"), path
    for channel in asyncapi()["channels"]:
        assert channel in page.text
    assert page.text == render_docs()


# -- schemathesis -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serve(["--redis", engine.url], tmp_path_factory.mktemp("schemathesis")) as process:
        yield process


def _operations() -> list[Any]:
    import schemathesis
    from schemathesis.core.result import Err

    schema = schemathesis.openapi.from_dict(openapi())
    operations: list[Any] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # our own document must load whole
        if result.ok().path not in STREAMING:
            operations.append(result.ok())
    return operations


def _clamp(case: Any) -> None:
    """Keep each request short: a generated long-poll would wait up to 60 s."""
    if isinstance(case.query, dict) and "wait" in case.query:
        case.query["wait"] = 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_error(api_server: ServeProcess, redis_url: str, mode: str) -> None:
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error]
    if mode == "positive":
        checks += [status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = _operations()
    strategies = [op.as_strategy(GenerationMode(mode)) for op in operations]
    calls = 0

    @settings(
        max_examples=len(operations) * (8 if mode == "positive" else 5),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def check(case: Any) -> None:
        nonlocal calls
        calls += 1
        _clamp(case)
        case.call_and_validate(base_url=api_server.url, checks=checks, timeout=10)

    check()
    assert calls > len(operations)
