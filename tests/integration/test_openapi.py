"""The API descriptions stay true: /openapi.json covers exactly the Starlette route table, /asyncapi.json
every streaming channel, /docs renders them, and schemathesis finds no 5xx against a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route, WebSocketRoute

from restmq.config import Limits, Settings
from restmq.storage.engine import EmbeddedEngine
from restmq.web import openapi as documents
from restmq.web.docs_page import render_docs
from restmq.web.routes import routes
from restmq.web.shapes import LIMIT
from tests.helpers.server import ServeProcess, run_app, serve

pytestmark = pytest.mark.integration

METHODS = {"get", "post", "put", "patch", "delete"}
STREAMING = {"/c/{queue}", "/sse/{queue}"}  # they never end: covered by the streaming tests instead


def openapi() -> dict[str, Any]:
    return documents.openapi(routes, Settings())


def asyncapi() -> dict[str, Any]:
    return documents.asyncapi(Settings())


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
    assert page.text == render_docs(openapi(), asyncapi())


# -- one definition per rule: the document's bounds and shapes are the server's --------------------------


def parameters(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return {p["name"]: p["schema"] for p in spec["paths"][path][method]["parameters"]}


async def test_the_bounds_are_the_running_limits(redis_url: str) -> None:
    limits = Limits(max_wait=5, max_count=7, max_lease=30, max_delay=90.5)
    async with run_app(redis_url, limits=limits) as base, httpx.AsyncClient(base_url=base) as http:
        spec = (await http.get("/openapi.json")).json()
        channels = (await http.get("/asyncapi.json")).json()
    get, add = parameters(spec, "/q/{queue}", "get"), parameters(spec, "/q/{queue}", "post")
    assert (get["wait"]["maximum"], get["count"]["maximum"], get["lease"]["maximum"]) == (5, 7, 30)
    assert add["delay"]["maximum"] == 90.5
    assert parameters(spec, "/q/{queue}/{key}/extend", "post")["lease"]["maximum"] == 30
    assert parameters(spec, "/sse/{queue}", "get")["lease"]["maximum"] == 30
    assert channels["components"]["schemas"]["StreamQuery"]["properties"]["lease"]["maximum"] == 30
    default = parameters(openapi(), "/q/{queue}", "get")
    assert (default["wait"]["maximum"], default["count"]["maximum"]) == (Limits().max_wait, Limits().max_count)
    assert LIMIT not in orjson.dumps(openapi()).decode() + orjson.dumps(asyncapi()).decode()


def test_every_json_answer_has_a_shape() -> None:
    spec = openapi()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                schema = resolve(answer).get("content", {}).get("application/json", {}).get("schema")
                if schema is not None:
                    assert resolve(schema).keys() & {"type", "anyOf", "properties"}, (method, path, status)


def validate(spec: dict[str, Any], method: str, path: str, response: httpx.Response) -> Any:
    """The reply, checked against the schema the document gives its route and status."""
    answers = spec["paths"][path][method]["responses"]
    answer = resolve(answers.get(str(response.status_code), answers.get("default", {})))
    schema = answer["content"]["application/json"]["schema"]
    jsonschema_rs.validate({**schema, "components": spec["components"]}, response.json())
    return response.json()


async def test_replies_of_the_main_routes_match_their_documented_shapes(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()

    async def call(method: str, path: str, url: str, **kwargs: Any) -> Any:
        return validate(spec, method, path, await http.request(method.upper(), url, **kwargs))

    assert (await call("post", "/q/{queue}", "/q/jobs", json=["a", "b", "c", "d"]))["keys"]
    assert (await call("get", "/q/{queue}", "/q/jobs"))["value"] == "a"
    assert len(await call("get", "/q/{queue}", "/q/jobs", params={"count": 1})) == 1
    leased = await call("get", "/q/{queue}", "/q/jobs", params={"lease": 30})
    key = leased["key"]
    await call("post", "/q/{queue}/{key}/extend", f"/q/jobs/{key}/extend", data={"lease": 60})
    assert (await call("post", "/q/{queue}/{key}/release", f"/q/jobs/{key}/release"))["status"] == "release"
    leased = await call("get", "/q/{queue}", "/q/jobs", params={"lease": 30})
    assert (await call("delete", "/q/{queue}/{key}", f"/q/jobs/{leased['key']}"))["status"] == "ack"
    assert (await call("get", "/stats/{queue}", "/stats/jobs"))["length"] == 1
    assert (await call("get", "/stats/", "/stats/"))["count"] == 1
    assert (await call("get", "/q/", "/q/"))["queues"] == ["jobs"]
    assert (await call("get", "/peek/{queue}", "/peek/jobs"))["truncated"] is False
    await call("post", "/p/{queue}", "/p/jobs", data={"policy": "roundrobin"})
    assert (await call("get", "/p/{queue}", "/p/jobs"))["value"] == "roundrobin"
    await call("post", "/control/{queue}", "/control/jobs", data={"max_deliveries": 3})
    assert (await call("get", "/control/{queue}", "/control/jobs"))["max_deliveries"] == 3
    assert (await call("post", "/queue", "/queue", json={"cmd": "take", "queue": "jobs"}))["value"] == "d"
    assert (await call("post", "/q/{queue}/redrive", "/q/jobs:dead/redrive"))["moved"] == 0
    assert (await call("delete", "/q/{queue}", "/q/jobs"))["status"] == 0
    assert (await call("delete", "/q/{queue}/{key}", "/q/jobs/jobs:99"))["code"] == "MESSAGE_NOT_FOUND"
    assert (await call("get", "/q/{queue}", "/q/jobs", params={"wait": -1}))["code"]
    assert (await call("get", "/health", "/health"))["status"] == "ok"
    assert (await call("get", "/ready", "/ready"))["status"] == "ready"


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
