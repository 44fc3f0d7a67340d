"""Unit fixtures: a fresh fakeredis per test, and the contract backends (fake and real)."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
import redis

from tests.redis_server import RedisServer


@pytest.fixture
def fake() -> redis.Redis:
    return fakeredis.FakeRedis()


@pytest.fixture(params=["fakeredis", "redis-server"])
def any_redis(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """The contract suite runs on both, as huey runs one storage suite over every backend."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        yield server.client()
