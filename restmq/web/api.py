"""What a route takes and gives, for the API description: the route table (restmq/web/routes.py) gives each
described route an `Api`, and restmq/web/openapi.py builds /openapi.json from them and restmq/web/shapes.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Route

JSON = "application/json"
JSONP = "application/javascript"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
NDJSON = "application/x-ndjson"
HTML = "text/html"
TEXT = "text/plain"
SSE = "text/event-stream"
ERRORS = (400, 401, 403, 503)  # most routes: bad input, credentials, the backend


@dataclass(frozen=True)
class Out:
    """One answer: a JSON model and/or other media types (text bodies), with the headers it may carry."""

    description: str
    json: Any = None
    media: Sequence[str] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description


@dataclass(frozen=True)
class Api:
    """A route's description. `gives` maps a status to a shapes model (its docstring describes the answer) or
    an Out; `errors` are the statuses of the shared error answers. The handler's docstring is the operation's
    description unless `description` is given."""

    summary: str
    tag: str
    gives: Mapping[int, Any]
    query: type | None = None  # a TypedDict of query parameters
    headers: type | None = None  # a TypedDict of request headers
    form: type | None = None  # a TypedDict of form fields (urlencoded or multipart)
    body: Mapping[str, Any] = field(default_factory=dict)  # other body media types -> model (str: text)
    body_required: bool = False
    errors: Sequence[int] | None = None  # default: ERRORS, none on a public route
    public: bool = False  # no credentials asked
    op_id: str | None = None  # default: the handler's name in camelCase
    description: str | None = None


class ApiRoute(Route):
    """A Starlette Route that carries its Api description."""

    def __init__(self, path: str, endpoint: Callable[..., Any], methods: list[str], api: Api) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.api = api
