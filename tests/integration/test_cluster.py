"""Redis Cluster: a pipeline's shards spread over the masters, found from any node's URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis
import redis.cluster

from redpool.cluster import slot_of
from redpool.keys import Keys
from redpool.producer import Producer, ProducerSettings
from tests.procs import (
    ROOT,
    Host,
    assert_exactly_once,
    env,
    read_results,
    redpool,
    wait_for,
)
from tests.redis_cluster import RedisCluster

N = 20_000
SHARDS = 6


def shard_numbers(cluster: redis.cluster.RedisCluster, pipeline: str) -> list[int]:
    raw = cluster.get(Keys(pipeline).shards)
    assert raw is not None, "the pipeline records its shards"
    numbers = orjson.loads(raw)
    assert isinstance(numbers, list)
    return [int(n) for n in numbers]


def keys_left(cluster: RedisCluster, pipeline: str, shards: list[int]) -> dict[str, list[bytes]]:
    """What is left under each shard's prefix, on whichever node holds it, but the run's
    bookkeeping (run, stats, producers, leases, pace, last-run, outputs, held markers)."""
    kept = {"run", "stats", "producers", "producer-leases", "pace", "last-run", "outputs"}
    left: dict[str, list[bytes]] = {}
    for server in cluster.masters():
        client = server.client()
        for k in shards:
            prefix = Keys(pipeline, k).prefix
            for key in client.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + "*"):
                name = key.decode().removeprefix(prefix)
                if name not in kept and not name.startswith("held:"):
                    left.setdefault(prefix, []).append(key)
    return left


@pytest.mark.parametrize("redis_cluster", [pytest.param(0, id="no-replicas")], indirect=True)
def test_twenty_thousand_tasks_over_six_shards_on_three_masters(
    redis_cluster: RedisCluster, pipeline: str, tmp_path: Path
) -> None:
    """Any node's URL just works; K = 6 shards spread over all 3 masters; 2 worker hosts;
    every task has exactly one result; nothing is left under any shard's prefix."""
    url = redis_cluster.url
    hosts = [
        Host(url, pipeline, "--exit-when-done", "--shards", str(SHARDS), log=tmp_path / f"w{i}.log")
        for i in range(2)
    ]
    with redis_cluster.client() as cluster:

        def registered() -> int:
            raw = cluster.get(Keys(pipeline).shards)
            head = orjson.loads(raw)[0] if raw else None
            return int(cluster.hlen(Keys(pipeline, head).workers)) if raw else 0

        wait_for(lambda: registered() == 2, what="both hosts to register on the head")
    with Producer(url, pipeline, ProducerSettings(shards=SHARDS, chunksize=50)) as producer:
        producer.map("echo", range(N))
        ids = {f"{producer.id}-{i}" for i in range(1, N + 1)}
    out = tmp_path / "results.jsonl"
    sunk = redpool(
        "sink", "--redis", redis_cluster.urls[-1], "--pipeline", pipeline, "--output", str(out)
    )
    assert sunk.returncode == 0, sunk.stderr
    assert f"{N} result(s): {N} ok, 0 failed".encode() in sunk.stderr
    for host in hosts:
        assert host.wait() == 0, host.output()
    results = read_results(out)
    assert_exactly_once(results, ids)
    assert sorted(r["value"] for r in results) == list(range(N))
    with redis_cluster.client() as cluster:
        shards = shard_numbers(cluster, pipeline)
        assert len(shards) == SHARDS
        masters = {cluster.get_node_from_key(Keys(pipeline, k).tasks).name for k in shards}
        assert len(masters) == 3, f"the shards spread over every master: {masters}"
        for k in shards:
            stats = cluster.hgetall(Keys(pipeline, k).stats)
            assert int(stats.get(b"submitted", 0)) > 0, f"shard {k} got tasks"
    assert keys_left(redis_cluster, pipeline, shards) == {}
    workers = {str(r["worker"]).split(":")[0] for r in results}
    assert len(workers) == 2, "both hosts worked"
    purged = redpool("purge", "--redis", url, "--pipeline", pipeline)
    assert purged.returncode == 0, purged.stderr
    for server in redis_cluster.masters():
        assert [k for k in server.client().scan_iter() if pipeline.encode() in k] == []


def _not_served_by(cluster: RedisCluster, node_port: int) -> str:
    """A pipeline name whose slot another master serves."""
    for i in range(1000):
        if cluster.master_for_key(Keys(f"p{i}").tasks).port != node_port:
            return f"p{i}"
    raise AssertionError("every name hashed to one node")


@pytest.mark.parametrize("redis_cluster", [pytest.param(0, id="no-replicas")], indirect=True)
def test_any_node_serves_every_pipeline(redis_cluster: RedisCluster, tmp_path: Path) -> None:
    """A node that does not serve the pipeline's slot (it would answer MOVED) is as good as
    any: produce, work, drain and status through it; status lists every master's pipelines."""
    node = redis_cluster.masters()[0]
    url = f"redis://127.0.0.1:{node.port}/0"
    name = _not_served_by(redis_cluster, node.port)
    produced = redpool(
        "produce", "--redis", url, "--pipeline", name, "--task", "echo", input=b"1\n2\n"
    )
    assert produced.returncode == 0, produced.stderr
    host = Host(url, name, "--exit-when-done", log=tmp_path / "w.log")
    out = tmp_path / "out.jsonl"
    sunk = redpool("sink", "--redis", url, "--pipeline", name, "--output", str(out))
    assert sunk.returncode == 0, sunk.stderr
    assert host.wait() == 0, host.output()
    assert sorted(r["value"] for r in read_results(out)) == [1, 2]
    listing = redpool("status", "--redis", url)
    assert listing.returncode == 0, listing.stderr
    text = listing.stdout.decode()
    assert text.startswith(f"1 pipeline(s) in Redis at {url} (a Redis Cluster: every master)")
    assert name in text


def _waiting(proc: subprocess.Popen[bytes], log: Path, line: str) -> bool:
    assert proc.poll() is None, log.read_text()
    return line in log.read_text()


@pytest.mark.parametrize("redis_cluster", [pytest.param(0, id="no-replicas")], indirect=True)
def test_a_slot_being_moved_and_a_cluster_down_are_waited_out(
    redis_cluster: RedisCluster, tmp_path: Path
) -> None:
    """A slot migrating (TRYAGAIN for a script over keys not all moved yet) and a master down
    with no replica (CLUSTERDOWN) are outages: a command waits, says so in one line, and
    ends well once the cluster serves the slot again."""
    owner, other = redis_cluster.masters()[:2]
    url = f"redis://127.0.0.1:{other.port}/0"
    name = next(
        f"q{i}" for i in range(1000) if redis_cluster.master_for_key(Keys(f"q{i}").tasks) == owner
    )
    produced = redpool(
        "produce", "--redis", url, "--pipeline", name, "--task", "echo", input=b"1\n"
    )
    assert produced.returncode == 0, produced.stderr
    slot = slot_of(name)
    ids = {v.port: v.id for v in redis_cluster.view(owner)}
    owner.client().cluster("SETSLOT", slot, "MIGRATING", ids[other.port])
    log = tmp_path / "status.log"
    with open(log, "wb") as err:
        status = subprocess.Popen(
            [sys.executable, "-P", "-m", "redpool", "status", "--redis", url, "--pipeline", name],
            cwd=ROOT,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=err,
        )
        wait_for(lambda: _waiting(status, log, "cannot serve us now"), what="status to wait")
        owner.client().cluster("SETSLOT", slot, "STABLE")
        shown, _ = status.communicate(timeout=30)
    assert status.returncode == 0, log.read_text()
    assert b"backlog" in shown

    host = Host(url, name, "--exit-when-done", log=tmp_path / "w.log")
    wait_for(lambda: owner.client().hlen(Keys(name).workers) == 1, what="the host to start")
    owner.kill()  # no replica: its slots are not served, and the host waits
    wait_for(lambda: b"retrying until" in host.log.read_bytes(), what="the host to wait")
    elsewhere = _not_served_by(redis_cluster, owner.port)  # a role on a live master starts
    produced = redpool(
        "produce", "--redis", url, "--pipeline", elsewhere, "--task", "echo", input=b"1\n"
    )
    assert produced.returncode == 0, produced.stderr
    owner.start()  # its nodes.conf brings it back as the master of its slots
    out = tmp_path / "out.jsonl"
    sunk = redpool("sink", "--redis", url, "--pipeline", name, "--output", str(out))
    assert sunk.returncode == 0, sunk.stderr
    assert host.wait() == 0, host.output()
    assert [r["value"] for r in read_results(out)] == [1]
