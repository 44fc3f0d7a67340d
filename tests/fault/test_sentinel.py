"""Failover of a primary watched by Redis Sentinel, mid-run and under a client.

A primary, its replica and 3 sentinels (all real servers, fresh per test). Waits are on
observable state with deadlines: the failover itself is the fixture's wait on what the
sentinels and the servers say.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpool.connection import Outage, address, connect
from redpool.producer import Producer
from redpool.settings import RedisSettings
from tests.procs import (
    ROOT,
    Host,
    assert_exactly_once,
    assert_nothing_left,
    env,
    read_results,
    wait_for,
)
from tests.redis_cluster import RedisSentinel

pytestmark = pytest.mark.slow

PIPELINE = "failover"


@pytest.fixture
def opened() -> Iterator[contextlib.ExitStack]:
    """The clients a test opens, closed when it ends (an unclosed socket is a warning, and
    warnings are errors)."""
    with contextlib.ExitStack() as stack:
        yield stack


def sentinel_url(deployment: RedisSentinel, query: str = "") -> str:
    hosts = ",".join(f"{h}:{p}" for h, p in deployment.sentinel_addresses)
    return f"redis+sentinel://{hosts}/{deployment.master_name}{query}"


@pytest.mark.timeout(60)
def test_primary_killed_mid_run(
    redis_sentinel: RedisSentinel, tmp_path: Path, opened: contextlib.ExitStack
) -> None:
    """The primary SIGKILLed mid-run: producer, two worker hosts and the sink ride out the
    election as an outage and go on with the promoted replica; every task ends with exactly
    one result and nothing is left in flight. (Through a redis:// URL of the old primary the
    run could not end: nothing would answer there again.)"""
    url = sentinel_url(redis_sentinel, "?replicas=1")
    out = tmp_path / "results.jsonl"
    hosts = [Host(url, PIPELINE, "--lease", "1.5", log=tmp_path / f"host{i}.log") for i in range(2)]
    with open(tmp_path / "sink.err", "wb") as sink_err:
        sink = subprocess.Popen(
            [
                *(sys.executable, "-P", "-m", "redpool.sink", "--redis", url),
                *("--pipeline", PIPELINE, "--output", str(out)),
            ],
            cwd=ROOT,
            env=env(),
            stderr=sink_err,
        )
        try:
            producer = Producer(url, PIPELINE)
            producer.submit_many("slow_echo", (([i, 0.001], None) for i in range(3000)))
            old = opened.enter_context(redis_sentinel.primary.client())
            stats = f"redpool:{{{PIPELINE}}}:stats"
            wait_for(lambda: int(old.hget(stats, "drained") or 0) > 300, what="results drained")
            new = redis_sentinel.kill_primary()
            producer.submit_many("echo", (([i], None) for i in range(2000)))  # it reconnects
            producer.close()
            assert sink.wait(timeout=60) == 0, (tmp_path / "sink.err").read_text()
        finally:
            if sink.poll() is None:
                sink.kill()
                sink.wait()
    results = read_results(out)
    assert_exactly_once(results, {f"{producer.id}-{i}" for i in range(1, 5001)})
    assert len(results) == 5000
    for host in hosts:
        host.signal(15)
        assert host.wait(timeout=30) == 0, host.output()
    assert_nothing_left(opened.enter_context(new.client()), PIPELINE)
    assert "Redis unavailable" in (tmp_path / "sink.err").read_text()  # an outage, ridden out


def test_a_demoted_primary_s_readonly_is_ridden_out(
    redis_sentinel: RedisSentinel, opened: contextlib.ExitStack
) -> None:
    """SENTINEL FAILOVER demotes a live primary, which then answers READONLY on the
    connections we hold to it: each call goes through, on the new primary, in order."""
    client = opened.enter_context(connect(RedisSettings(sentinel_url(redis_sentinel))))
    outage = Outage(logging.getLogger("test"), client=client)
    key = "{failover}:list"
    for i in range(5):
        outage.call(client.rpush, key, i)
    old = opened.enter_context(redis_sentinel.primary.client())
    assert redis_sentinel.replica is not None
    new = redis_sentinel.replica
    sentinel = opened.enter_context(redis_sentinel.sentinels[0].client())
    sentinel.execute_command("SENTINEL", "FAILOVER", redis_sentinel.master_name)
    # Sentinel tells the old primary to follow the new one only once it has seen the new
    # one's INFO (every 10 s): this wait is most of the test's time.
    wait_for(lambda: old.execute_command("ROLE")[0] == b"slave", what="the demotion")
    for i in range(5, 10):
        outage.call(client.rpush, key, i)
    assert opened.enter_context(new.client()).lrange(key, 0, -1) == [b"%d" % i for i in range(10)]
    assert address(client).endswith(f"(primary 127.0.0.1:{new.port})")
