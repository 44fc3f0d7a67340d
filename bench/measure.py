"""What the benchmark's runs share: a row of results, CPU and memory read from /proc and from
Redis, a redpool worker pool started as users start it, and the medians of repeated runs."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import orjson
import redis
import redis.cluster

from bench.work import burn
from redpool.cluster import is_cluster_node
from redpool.keys import Keys

ROOT = Path(__file__).resolve().parent.parent
CORES = os.cpu_count() or 1
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
"""Every process the benchmark starts imports redpool from this checkout."""


@dataclass
class Row:
    """One system's figures on one workload: a line of a table."""

    system: str
    n: int
    seconds: float
    chunksize: str = "-"
    redis_us: float | None = None
    """Redis CPU per task over the run, from INFO cpu; None where Redis is not used."""
    runs: int = 1
    work: float = 0.0
    """For ``burn``: the CPU seconds the tasks measured where they ran."""
    rss: dict[str, float] = field(default_factory=dict)
    """Peak RSS in MB per role, and Redis' peak used_memory."""
    cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU µs per task per role, and Redis'."""
    masters_us: list[float] = field(default_factory=list)
    """Redis CPU per task of the run on each master, by port (one entry on one Redis)."""

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0


def efficiency(row: Row) -> float:
    """Ideal all-core time for the row's tasks, over the wall time it took.

    The ideal is the sum of the times the tasks themselves measured where they ran (burn
    returns it), so a VM that runs slower or faster during the run does not skew it."""
    return row.work / CORES / row.seconds if row.seconds else 0.0


def median(
    rows: list[Row], by_efficiency: bool = False, by: Callable[[Row], float] | None = None
) -> Row:
    """The middle run of several (by rate, by efficiency, or by ``by``), counting the runs."""
    key: Callable[[Row], float] = efficiency if by_efficiency else (lambda r: -r.seconds)
    row = sorted(rows, key=by or key)[len(rows) // 2]
    row.runs = len(rows)
    return row


def calibrate(target: float = 0.010) -> tuple[int, float]:
    """Iterations of ``burn`` that take ~target seconds here, and the measured median.

    Re-measured until the median of several calls lands within 5 % of the target: one
    timing taken while the VM was descheduled would otherwise skew every (b) figure.
    """
    n = 100_000
    median_s = 0.0
    for _ in range(20):
        times = []
        for _ in range(7):
            t = time.perf_counter()
            burn(n)
            times.append(time.perf_counter() - t)
        median_s = statistics.median(times)
        if abs(median_s - target) < 0.05 * target:
            break
        n = max(1000, int(n * target / median_s))
    return n, median_s


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def masters(url: str) -> list[redis.Redis]:
    """A client of each master behind ``url``, by port: the one Redis, or every master of the
    Redis Cluster the node at ``url`` belongs to."""
    client = redis.Redis.from_url(url)
    if not is_cluster_node(client):
        return [client]
    with redis.cluster.RedisCluster.from_url(url) as cluster:
        nodes = cluster.get_primaries()
        addresses = sorted((int(n.port), str(n.host)) for n in nodes)
    client.close()
    return [redis.Redis(host=host, port=port) for port, host in addresses]


def any_client(url: str) -> redis.Redis | redis.cluster.RedisCluster:
    """A client that reaches every key behind ``url``, on one Redis or a cluster."""
    client = redis.Redis.from_url(url)
    if not is_cluster_node(client):
        return client
    client.close()
    return redis.cluster.RedisCluster.from_url(url)


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_until(ready: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: {what} within {timeout:g} s")
        time.sleep(0.02)


def hosts(client: redis.Redis | redis.cluster.RedisCluster, pipeline: str) -> int:
    """Worker hosts registered on ``pipeline``: on its head shard, the first its record of
    shards names (see redpool.keys.Keys), if it has one."""
    record = client.get(Keys(pipeline).shards)
    head = orjson.loads(record)[0] if record else None
    return int(client.hlen(Keys(pipeline, head).workers))


class WorkerPool:
    """`python -m redpool.workers` with CORES processes on one pipeline (``--shards shards``
    if given), started as a user starts it; returns once its host has registered."""

    def __init__(self, url: str, pipeline: str, shards: int | None = None) -> None:
        command = ["redpool.workers", "--tasks", "bench.tasks", "--processes", str(CORES)]
        if shards is not None:
            command += ["--shards", str(shards)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *command, "--redis", url, "--pipeline", pipeline],
            cwd=ROOT,
            env=ENV,
            stderr=subprocess.DEVNULL,
        )
        client = any_client(url)
        wait_until(lambda: hosts(client, pipeline), "redpool workers did not start")
        client.close()

    def pids(self) -> tuple[int, list[int]]:
        pid = self.proc.pid
        return pid, [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def peak_rss(self) -> tuple[float, float]:
        """(supervisor, largest child) peak RSS in MB."""
        pid, kids = self.pids()
        return vm_hwm_mb(pid), max(vm_hwm_mb(k) for k in kids)

    def cpu(self) -> float:
        """CPU seconds used so far by the supervisor and its children."""
        pid, kids = self.pids()
        return sum(proc_cpu(p) for p in (pid, *kids))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


class MemorySampler(threading.Thread):
    """Redis used_memory (summed over the masters given; none given, nothing sampled), sampled
    while a run goes on: what ``max_backlog`` bounds."""

    INTERVAL = 0.02
    """Short enough for a --quick run's fraction of a second; an INFO call costs Redis a few
    µs, a negligible share of its CPU beside the run's."""

    def __init__(self, nodes: list[redis.Redis]) -> None:
        super().__init__(daemon=True)
        self.nodes, self.peak, self.stopped = nodes, 0, threading.Event()

    def run(self) -> None:
        while True:
            used = sum(int(node.info("memory")["used_memory"]) for node in self.nodes)
            self.peak = max(self.peak, used)
            if self.stopped.wait(self.INTERVAL):
                return

    def stop(self) -> None:
        self.stopped.set()
        self.join()
