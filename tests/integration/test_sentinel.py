"""A primary watched by Redis Sentinel (a replica, 3 sentinels, all real servers): the CLI
runs through a ``redis+sentinel://`` URL, says in one line when it finds no primary, and
``?replicas=N`` makes each write wait for a replica while there is one."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redpool.connection import Outage, connect
from redpool.settings import RedisSettings
from tests.procs import (
    Host,
    assert_exactly_once,
    assert_nothing_left,
    error_line,
    read_results,
    redpool,
    wait_for,
)
from tests.redis_cluster import RedisSentinel, free_ports, running_sentinel

N = 2000
SYNC_KEY = "redpool:{sentinel-test}:sync"


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    """One deployment for the tests that kill nothing in it (isolated by key names)."""
    with running_sentinel(tmp_path_factory.mktemp("sentinel")) as deployment:
        yield deployment


@pytest.fixture
def opened() -> Iterator[contextlib.ExitStack]:
    """The clients a test opens, closed when it ends (an unclosed socket is a warning, and
    warnings are errors)."""
    with contextlib.ExitStack() as stack:
        yield stack


def sentinel_url(deployment: RedisSentinel, query: str = "", service: str = "redpool") -> str:
    hosts = ",".join(f"{h}:{p}" for h, p in deployment.sentinel_addresses)
    return f"redis+sentinel://{hosts}/{service}{query}"


def test_a_run_through_a_sentinel_url(
    sentinels: RedisSentinel, pipeline: str, tmp_path: Path, opened: contextlib.ExitStack
) -> None:
    """Producer, a worker host and the sink find the primary through the sentinels: every task
    has exactly one result, and nothing is left."""
    url = sentinel_url(sentinels, "?replicas=1")
    host = Host(url, pipeline, "--exit-when-done", log=tmp_path / "worker.log")
    lines = b"".join(b"%d\n" % i for i in range(N))
    produced = redpool(
        "produce", "--redis", url, "--pipeline", pipeline, "--task", "echo", input=lines
    )
    assert produced.returncode == 0, produced.stderr
    out = tmp_path / "results.jsonl"
    sunk = redpool("sink", "--redis", url, "--pipeline", pipeline, "--output", str(out))
    assert sunk.returncode == 0, sunk.stderr
    assert host.wait() == 0, host.output()
    results = read_results(out)
    producer = results[0]["producer"]
    assert_exactly_once(results, {f"{producer}-{i}" for i in range(1, N + 1)})
    assert_nothing_left(opened.enter_context(sentinels.primary.client()), pipeline)


def test_an_unknown_service_is_one_line_after_the_wait(sentinels: RedisSentinel) -> None:
    url = sentinel_url(sentinels, "?sentinel_password=hush", service="nope")
    url = url.replace("://", "://:s3cret@")
    done = redpool("status", "--redis", url, "--wait-for-redis", "0.3")
    line = error_line(done)
    assert "no sentinel that answered (3 of 3) knows a primary named 'nope'" in line
    assert "s3cret" not in line and "hush" not in line and "***@" in line


def test_no_sentinel_reachable_is_one_line() -> None:
    ports = free_ports(2)
    url = f"redis+sentinel://:s3cret@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/redpool"
    line = error_line(redpool("status", "--redis", url, "--wait-for-redis", "0.2"))
    assert line.startswith(
        f"redpool: error: cannot find the primary at redis+sentinel://***@127.0.0.1:{ports[0]},"
    )
    assert "no sentinel answered (127.0.0.1:" in line and "s3cret" not in line


def test_a_malformed_sentinel_url_is_one_line() -> None:
    line = error_line(redpool("status", "--redis", "redis+sentinel://:s3cret@h:1/svc/x/y"))
    assert line == (
        "redpool: error: bad Redis URL 'redis+sentinel://***@h:1/svc/x/y': expected "
        "/SERVICE or /SERVICE/DB after the hosts, not '/svc/x/y'"
    )


def _waits(client: redis.Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_wait", {})
    return int(stats.get("calls", 0))


def test_each_write_waits_for_the_replica_and_reads_do_not(
    sentinels: RedisSentinel, opened: contextlib.ExitStack
) -> None:
    """With ?replicas=1 a call that writes returns once the replica has its write: read back
    from the replica at once, it is there; a read pays no WAIT."""
    client = opened.enter_context(connect(RedisSettings(sentinel_url(sentinels, "?replicas=1"))))
    outage = Outage(logging.getLogger("test"), client=client, sync_key=SYNC_KEY)
    primary = opened.enter_context(sentinels.primary.client())
    assert sentinels.replica is not None
    replica = opened.enter_context(sentinels.replica.client())
    before = _waits(primary)
    for i in range(50):
        outage.call(client.rpush, "{sentinel-test}:list", i)
        assert replica.llen("{sentinel-test}:list") == i + 1
    assert _waits(primary) == before + 50
    for _ in range(10):
        outage.read(client.llen, "{sentinel-test}:list")
    assert _waits(primary) == before + 50


def test_too_few_replicas_is_one_warning_and_no_wait(
    redis_sentinel: RedisSentinel, caplog: pytest.LogCaptureFixture, opened: contextlib.ExitStack
) -> None:
    """A replica gone: writes go on without waiting for it, with one warning; once it is
    back (and a look at INFO finds it online), writes wait for it again, and that is said."""
    settings = RedisSettings(sentinel_url(redis_sentinel, "?replicas=1&replicas_timeout=0.2"))
    client = opened.enter_context(connect(settings))
    outage = Outage(logging.getLogger("test"), client=client, sync_key=SYNC_KEY)
    replica = redis_sentinel.replica
    assert replica is not None
    replica.kill()
    primary = opened.enter_context(redis_sentinel.primary.client())
    with caplog.at_level(logging.INFO, logger="test"):
        for i in range(30):
            outage.call(client.set, "{sentinel-test}:x", i)
        assert caplog.text.count("only 0 of 1 replica(s) acknowledged a write within 200 ms") == 1
        assert _waits(primary) == 1  # the one that found it missing; then none while it is
        replica.start()
        wait_for(
            lambda: (
                bool(outage.call(client.set, "{sentinel-test}:x", 0))
                and "writes reach 1 replica(s) again" in caplog.text
            ),
            what="the replica to be back",
        )
    assert caplog.text.count("acknowledged a write within") == 1
