"""Shared fixtures: a real valkey-server (the embedded engine) and real HTTP servers on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from hypothesis import settings

from restmq.storage.engine import EmbeddedEngine
from restmq.storage.node import RedisStore
from tests.helpers.cluster import Cluster
from tests.helpers.server import run_app

# Hypothesis judges correctness here, not speed: its per-example deadline would fail a test on a busy shared
# machine for being slow (benchmarks judge speed).
settings.register_profile("restmq", deadline=None)
settings.load_profile("restmq")

# The marker every test of a directory carries, so `pytest -m unit` (or integration, e2e) selects a whole tier.
TIERS = {"unit": "unit", "integration": "integration", "faults": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test without its directory's tier marker fails collection: `-m <tier>` would silently leave it out."""
    root = Path(__file__).parent
    unmarked: dict[str, str] = {}  # test file -> the marker it lacks
    for item in items:
        if not item.path.is_relative_to(root):
            continue
        tier = TIERS.get(item.path.relative_to(root).parts[0])
        if tier is not None and item.get_closest_marker(tier) is None:
            unmarked.setdefault(item.nodeid.partition("::")[0], tier)
    if unmarked:
        lines = [f"{path}: add pytestmark = pytest.mark.{tier}" for path, tier in sorted(unmarked.items())]
        raise pytest.UsageError("tests without their tier's marker:\n  " + "\n  ".join(lines))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: every test must run there."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") and reporter is not None and reporter.stats.get("skipped"):
        reporter.write_line(f"CI: {len(reporter.stats['skipped'])} test(s) skipped; skips are failures in CI", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedEngine]:
    """One valkey-server for the session; tests get it flushed through `redis_url`."""
    with EmbeddedEngine(tmp_path_factory.mktemp("engine")) as running:
        yield running


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[EmbeddedEngine]:
    """An engine of the test's own (not the session's), so the test can kill, freeze or restart it."""
    started = EmbeddedEngine(tmp_path / "engine")
    started.start()
    yield started
    started.stop()


def _flush(engine: EmbeddedEngine) -> None:
    client = redis.Redis(unix_socket_path=engine.socket_path)
    client.flushall()
    client.close()


@pytest.fixture
def redis_url(engine: EmbeddedEngine) -> Iterator[str]:
    """The session engine, flushed before the test and after it: a token a test leaves behind would otherwise
    lock the next module's long-lived server (a server that has seen a token keeps requiring one)."""
    _flush(engine)
    yield engine.url
    _flush(engine)


@pytest.fixture
def redis_client(redis_url: str, engine: EmbeddedEngine) -> Iterator[redis.Redis]:
    client = redis.Redis(unix_socket_path=engine.socket_path, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore.from_url(redis_url)
    yield opened
    await opened.close()


@pytest.fixture
async def server(redis_url: str) -> AsyncIterator[str]:
    """Base URL of RestMQ on uvicorn (in this event loop) over the session engine."""
    async with run_app(redis_url) as url:
        yield url


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# -- topologies: one node, a ring of 3 engines, a Redis Cluster (3 masters + 3 replicas) -------------


@pytest.fixture(scope="session")
def ring_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EmbeddedEngine]]:
    """Three embedded engines for the session, the nodes of a consistent-hash ring."""
    from tests.helpers.topology import engines

    with engines(tmp_path_factory.mktemp("ring"), 3) as started:
        yield started


@pytest.fixture(scope="session")
def shared_cluster() -> Iterator[Cluster]:
    """A real Redis Cluster for the session. Tests that kill nodes start their own."""
    from tests.helpers.cluster import running_cluster

    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["node", "ring", "cluster"])
async def topology(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Base URL of RestMQ (in-process) on flushed backends: one node, a 3-node ring or a Redis Cluster."""
    from tests.helpers.topology import flush_cluster, flush_engines

    if request.param == "node":
        engine: EmbeddedEngine = request.getfixturevalue("engine")
        flush_engines([engine])
        app = run_app(engine.url)
    elif request.param == "ring":
        ring: list[EmbeddedEngine] = request.getfixturevalue("ring_engines")
        flush_engines(ring)
        app = run_app(redis_urls=[e.url for e in ring])
    else:
        cluster: Cluster = request.getfixturevalue("shared_cluster")
        flush_cluster(cluster)
        app = run_app(redis_cluster=cluster.url)
    async with app as url:
        yield url
