"""Shared fixtures: a session redis-server on a free port, unique pipeline names, and a
Redis Cluster or Sentinel deployment of a test's own."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.procs import STARTED
from tests.redis_cluster import RedisCluster, RedisSentinel, running_cluster, running_sentinel
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redpool")
    group.addoption(
        "--chaos-seconds",
        type=float,
        default=30.0,
        help="How long the random fault schedule of tests/fault/test_chaos.py goes on.",
    )
    group.addoption("--chaos-seed", type=int, default=None, help="Replay a random fault schedule.")


@pytest.fixture(autouse=True)
def _no_host_outlives_its_test() -> Iterator[None]:
    yield
    while STARTED:
        host = STARTED.pop()
        if host.proc.poll() is None:
            host.kill_host()
        elif not host.waited:
            host.wait()  # exited on its own: close its log


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the integration tests; isolation is by pipeline name."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()


@pytest.fixture
def real_redis(redis_server: RedisServer) -> redis.Redis:
    return redis_server.client()


@pytest.fixture
def pipeline(request: pytest.FixtureRequest) -> str:
    """A pipeline name of this test's own, instead of FLUSHALL."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"t{next(_names)}-{base}"


@pytest.fixture
def redis_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisCluster]:
    """3 masters with one replica each, fresh per test because tests kill its nodes. A test
    that wants another replica count asks with ``parametrize("redis_cluster", [0],
    indirect=True)``."""
    replicas: int = getattr(request, "param", 1)
    with running_cluster(tmp_path / "cluster", replicas=replicas) as cluster:
        yield cluster


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinel]:
    """A primary, its replica and 3 sentinels, fresh per test because tests kill the primary."""
    with running_sentinel(tmp_path / "sentinel") as deployment:
        yield deployment
