"""A Redis Cluster master killed mid-run: its replica takes over, and the run completes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from redpool.producer import Producer, ProducerSettings
from tests.procs import (
    ROOT,
    Host,
    assert_exactly_once,
    env,
    read_results,
    wait_for,
)
from tests.redis_cluster import RedisCluster

pytestmark = pytest.mark.slow

N = 3_000
SHARDS = 6


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_master_killed_mid_run_fails_over_and_the_run_completes(
    redis_cluster: RedisCluster, pipeline: str, tmp_path: Path
) -> None:
    """Guarantee: a failover during a run (a master SIGKILLed, its replica promoted) loses
    nothing and answers nothing twice: every task has exactly one result, the sink ends the
    run complete, and both hosts end well (with ``?replicas=1``: see README, what a failover
    can lose). The producer, hosts and sink each know one node's
    URL only (another node's), and find the promoted replica themselves."""
    # every write waits for the master's replica (WAIT): the promoted one has all of them
    urls = [f"{url}/0?replicas=1" for url in redis_cluster.urls]
    hosts = [
        Host(
            urls[i + 1],
            pipeline,
            "--exit-when-done",
            "--shards",
            str(SHARDS),
            log=tmp_path / f"w{i}.log",
        )
        for i in range(2)
    ]
    out = tmp_path / "results.jsonl"
    sink_log = tmp_path / "sink.log"
    with open(sink_log, "wb") as err:
        sink = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-m",
                "redpool",
                "sink",
                "--redis",
                urls[3],
                "--pipeline",
                pipeline,
                "--output",
                str(out),
                "--shards",
                str(SHARDS),
            ],
            cwd=ROOT,
            env=env(),
            stderr=err,
        )
    try:
        settings = ProducerSettings(shards=SHARDS, chunksize=10, batch_size=20)
        with Producer(urls[4], pipeline, settings) as producer:
            producer.map("slow_echo", ([i, 0.002] for i in range(N)))
            ids = {f"{producer.id}-{i}" for i in range(1, N + 1)}
        wait_for(lambda: lines(out) >= N // 5, what="a fifth of the results to be drained")
        assert lines(out) < N, "the run is still going when the master dies"
        redis_cluster.kill_master()
        assert sink.wait(timeout=120) == 0, sink_log.read_text()
        for host in hosts:
            assert host.wait() == 0, host.output()
    finally:  # a failure leaves no role retrying a cluster that is gone
        if sink.poll() is None:
            sink.kill()
            sink.wait()
        for host in hosts:
            if host.proc.poll() is None:
                host.kill_host()
    results = read_results(out)
    assert_exactly_once(results, ids)
    assert "complete" in sink_log.read_text()
