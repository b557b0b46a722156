"""The blocking client (sync.py, _sync_stream.py, _sync_worker.py) is generated from the asyncio one: regenerating it
in memory must change nothing, and the two keep the same methods."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

from restmq.client import _aio_flavor, _sync_flavor
from restmq.client.aio import AsyncClient, AsyncStream
from restmq.client.sync import Client, Stream

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "generate-sync-client"
    loader = importlib.machinery.SourceFileLoader("generate_sync_client", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_blocking_client_is_what_the_generator_writes() -> None:
    rendered = _generator().render()
    assert {path.name for path in rendered} == {"sync.py", "_sync_stream.py", "_sync_worker.py"}
    for path, text in rendered.items():
        assert path.read_text() == text, f"{path.name} is stale: run scripts/generate-sync-client"


def test_both_flavors_define_the_same_names() -> None:
    def public(module: ModuleType) -> set[str]:
        return {name for name, value in vars(module).items() if not name.startswith("_") and inspect.isfunction(value)}

    assert public(_aio_flavor) == public(_sync_flavor)
    assert hasattr(_aio_flavor, "Handler") and hasattr(_sync_flavor, "Handler")


RENAMES = {
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
}


def _methods(cls: type) -> set[str]:
    """Public names, and the context-manager and iterator protocols, with the asyncio names renamed."""
    protocol = set(RENAMES) | set(RENAMES.values())
    return {RENAMES.get(name, name) for name in vars(cls) if not name.startswith("_") or name in protocol}


def test_the_two_clients_offer_the_same_methods() -> None:
    assert _methods(AsyncClient) == _methods(Client)
    assert _methods(AsyncStream) == _methods(Stream)
    assert {"close", "__enter__", "__exit__"} <= _methods(Client)
    assert {"__iter__", "__next__"} <= _methods(Stream)
