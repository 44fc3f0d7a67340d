"""Fault tests: each gets a redis-server of its own (AOF on) that it may stop and restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tests.runs import Run


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield srv
    srv.kill()


@pytest.fixture
def run(server: RedisServer, tmp_path: Path) -> Iterator[Run]:
    r = Run(server, tmp_path)
    yield r
    r.clean_up()
