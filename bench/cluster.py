"""A local Redis Cluster for part (f), and what (f) works out from it.

The benchmark carries its own small starter rather than the tests' (tests/redis_cluster.py):
those nodes run with the AOF on and ``appendfsync always`` (a SIGKILL must lose nothing a
fault test counts on), so every write would fsync and Redis CPU per task would measure the
disk, not redpool; and the tests' helpers skip or fail through pytest. These nodes are set up
like ``embedded_redis``, the one Redis of the other parts (no RDB, no AOF), so (f)'s K = 1
row and (a)'s figures are comparable; no replicas, since nothing here fails over.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.measure import Row
from redpool.embedded import free_port

MASTERS = 3
SHARDS = (1, 3, 6)
"""(f)'s shard counts: one master alone, one shard per master, two per master."""
READY_S = 30.0
PROJECTED = (1, 3, 6, 12)
"""The cluster sizes (masters) (f) writes the projected throughput down for."""


@dataclass
class Cluster:
    """(f)'s results: the median run of each shard count, and the servers' version."""

    rows: dict[int, Row]
    redis_version: str


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (two free_port() calls may hand out the same one)."""
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def _node(exe: str, directory: Path, port: int, bus: int) -> subprocess.Popen[bytes]:
    """One node, as embedded_redis sets up its Redis (no RDB, no AOF), in cluster mode."""
    directory.mkdir()
    options = {
        "port": port,
        "bind": "127.0.0.1",
        "dir": directory,
        "save": "",
        "appendonly": "no",
        "logfile": "redis.log",
        "cluster-enabled": "yes",
        "cluster-config-file": "nodes.conf",
        "cluster-port": bus,  # the bus defaults to port + 10000: may be taken, or past 65535
    }
    args = [exe, *(word for k, v in options.items() for word in (f"--{k}", str(v)))]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _serving(client: redis.Redis) -> bool:
    """The node says the cluster is ok with every slot served."""
    try:
        text = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    except redis.RedisError:  # still starting
        return False
    text = text.decode() if isinstance(text, bytes) else str(text)
    return "cluster_state:ok" in text and "cluster_slots_ok:16384" in text


def _wait(ready: Callable[[redis.Redis], bool], clients: list[redis.Redis], what: str) -> None:
    deadline = time.monotonic() + READY_S
    while not all(ready(c) for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: the local cluster: {what} within {READY_S:g} s")
        time.sleep(0.05)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@contextmanager
def local_cluster(masters: int = MASTERS) -> Iterator[str]:
    """A Redis Cluster of ``masters`` masters and no replicas on free ports in a temp dir,
    formed with ``redis-cli --cluster create``; yields one node's URL (any node's works) and
    terminates every node when the block exits."""
    exe, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if exe is None or cli is None:
        raise RuntimeError("bench: (f) needs redis-server and redis-cli on PATH")
    ports = _free_ports(2 * masters)
    with tempfile.TemporaryDirectory(prefix="redpool-bench-cluster-") as tmp:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(masters):
                procs.append(_node(exe, Path(tmp) / f"node{i}", ports[2 * i], ports[2 * i + 1]))
            clients = [redis.Redis(port=p, socket_timeout=2) for p in ports[::2]]
            _wait(_answers, clients, "nodes did not start")
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in ports[::2]),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=READY_S,
            )
            _wait(_serving, clients, "cluster did not serve every slot")
            yield f"redis://127.0.0.1:{ports[0]}/0"
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)


def busiest_us(row: Row) -> float:
    """The highest Redis CPU µs per task of the pipeline that any one master spent."""
    return max(row.masters_us) if row.masters_us else 0.0


def projected_rate(row: Row, masters: int) -> float:
    """Tasks/s a cluster of ``masters`` masters could feed, one Redis core each, from a row
    measured on this cluster of `MASTERS` masters.

    A master's Redis is one thread: it saturates when its CPU per second reaches 1 s. The
    row gives, per task *of the whole pipeline*, the CPU each master spent; the busiest one
    spent ``b`` µs, so this cluster tops out at 1e6 / b tasks/s (the busiest core is full
    first). Spread over N masters instead of M (= `MASTERS`), with the shards spread as
    evenly and the same Redis work per task served, each master serves M / N times as many
    of the pipeline's tasks as now, so the busiest spends ``b * M / N`` µs per pipeline task
    and the cluster tops out at

        rate(N) = 1e6 / (b * M / N) = N * 1e6 / (M * b).

    ``M * b`` is the busiest master's µs per task it serves (its share of the tasks is ~1/M,
    or a little more: the imbalance is kept). Assumed, and not measured here: producers,
    worker hosts and the CPU between them scale out with hosts, so Redis is the bottleneck;
    the shards (K >= N) spread over the N masters as they do over M here; and Redis' cost
    per task stays as it was at this load (a saturated Redis usually does less per task,
    its takes finding full batches; more shards and more worker children add the polls of
    empty shards)."""
    b = busiest_us(row)
    return masters * 1e6 / (MASTERS * b) if b else 0.0


def shares(row: Row) -> str:
    """Each master's share of the row's Redis CPU, in percent, in port order: "38/33/29 %"."""
    total = sum(row.masters_us)
    if not total:
        return "-"
    return "/".join(f"{us / total * 100:.0f}" for us in row.masters_us) + " %"


def cluster_goals(cluster: Cluster) -> list[tuple[str, float, str, bool]]:
    """Issue 15's goal: the busiest master's Redis CPU per task falls ~1/masters as the same
    load spreads over the cluster's masters (K=1: one master; K=3 and 6: all of them)."""
    one = busiest_us(cluster.rows[1])
    goals = []
    for k in (3, 6):
        ratio = busiest_us(cluster.rows[k]) / one if one else 0.0
        name = f"(15) Redis CPU per task per master falls ~1/masters: busiest, K={k} / K=1"
        goals.append((name, ratio, f"~1/{MASTERS} (<= 0.4)", ratio <= 0.4))
    return goals
