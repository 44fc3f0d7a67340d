"""Shared fixtures: a session redis-server on a free port, unique pipeline names."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count()


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
