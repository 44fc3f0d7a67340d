"""One run of one system on one workload: redpool through its API and through its CLI, the
head-of-line and latency runs, multiprocessing.Pool, bare processes and the peer job queues."""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import redis

from bench.measure import (
    CORES,
    ENV,
    ROOT,
    MemorySampler,
    Row,
    WorkerPool,
    masters,
    redis_cpu,
    version,
    wait_until,
)
from bench.work import burn, noop
from redpool.answers import ResultEnvelope
from redpool.keys import Keys

# -- redpool through its API -----------------------------------------------------------------


def _role(*args: str) -> subprocess.Popen[bytes]:
    """bench/roles.py in a process of its own; returns once it is connected and waiting."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "roles.py"), *args],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    if proc.stdout.readline() != b"ready\n":
        raise RuntimeError(f"bench: roles.py {args[0]} did not start")
    return proc


def _release(procs: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
    """Tell every waiting role "go" at once; what each printed when it finished."""
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    return [json.loads(proc.communicate()[0]) for proc in procs]


def run_api(
    url: str,
    pipeline: str,
    task: str,
    n: int,
    arg: int,
    chunksize: str,
    max_backlog: int = 0,
    shards: int | None = None,
    sample_memory: bool = True,
) -> Row:
    """Producer and sink in processes of their own, released together; workers started.
    ``shards``: each role is given ``--shards``/``shards=``, creating a sharded pipeline.

    The clock runs from "go" until the sink has every result. Redis CPU is read on every
    master behind ``url`` (one, or each master of a Redis Cluster). Without
    ``sample_memory`` Redis' peak memory is not sampled: its INFO calls, every 20 ms on
    each master, would be in the per-master CPU that (f) compares."""
    nodes = masters(url)
    pool = WorkerPool(url, pipeline, shards)
    sharding = [] if shards is None else [str(shards)]
    try:
        producer = _role(
            "produce", url, pipeline, task, str(n), str(arg), str(max_backlog), chunksize, *sharding
        )
        sink = _role("sink", url, pipeline, "sum" if task == "burn" else "-", *sharding)
        memory = MemorySampler(nodes if sample_memory else [])
        cpu, pool_cpu = [redis_cpu(node) for node in nodes], pool.cpu()
        started = time.time()
        memory.start()
        produced, sunk = _release([producer, sink])
        memory.stop()
        if sunk["count"] != n:
            raise RuntimeError(f"bench: {pipeline}: {sunk['count']} results of {n}")
        row = Row("redpool API", n, sunk["done"] - started, chunksize, work=sunk["work"])
        row.masters_us = [(redis_cpu(m) - c) / n * 1e6 for m, c in zip(nodes, cpu, strict=True)]
        row.redis_us = sum(row.masters_us)
        supervisor, child = pool.peak_rss()
        row.rss = {
            "producer": produced["rss_mb"],
            "supervisor": supervisor,
            "worker child": child,
            "sink": sunk["rss_mb"],
            "redis": memory.peak / 2**20,
        }
        row.cpu_us = {
            "producer": produced["cpu"] / n * 1e6,
            "workers": (pool.cpu() - pool_cpu) / n * 1e6,
            "sink": sunk["cpu"] / n * 1e6,
            "redis": row.redis_us,
        }
    finally:
        pool.stop()
    return row


# -- redpool through its CLI -----------------------------------------------------------------


def _cli(command: str, url: str, pipeline: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "redpool", command, "--redis", url, "--pipeline", pipeline, *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def write_inputs(path: Path, n: int, arg: int) -> Path:
    """A JSON Lines file of n lines, each the one argument of a task."""
    path.write_bytes(b"%d\n" % arg * n)
    return path


def run_cli(url: str, pipeline: str, inputs: Path, n: int, chunksize: str) -> Row:
    """`redpool sink --output` started first and waiting, then `redpool produce --input`; the
    clock runs from starting the producer (its start-up included, as a user sees it) until
    the sink has written every result and exited."""
    client = redis.Redis.from_url(url)
    output = inputs.with_name(f"{pipeline}.out.jsonl")
    pool = WorkerPool(url, pipeline)
    try:
        sink = _cli("sink", url, pipeline, "--output", str(output))
        wait_until(lambda: client.exists(Keys(pipeline).sink), "redpool sink did not start")
        cpu = redis_cpu(client)
        started = time.perf_counter()
        task = ["--task", "noop", "--input", str(inputs), "--chunksize", chunksize]
        producer = _cli("produce", url, pipeline, *task)
        said = producer.communicate()[1] + sink.communicate()[1]
        seconds = time.perf_counter() - started
        redis_us = (redis_cpu(client) - cpu) / n * 1e6
    finally:
        pool.stop()
    with output.open("rb") as results:
        ok = sum(1 for line in results if b'"ok":true' in line)
    output.unlink()
    if producer.returncode or sink.returncode or ok != n:
        raise RuntimeError(f"bench: {pipeline}: {ok} ok results of {n}: {said.decode()[-300:]}")
    return Row("redpool CLI", n, seconds, chunksize, redis_us)


def cli_startup() -> float:
    """Seconds `python -m redpool --version` takes (median of three): the start-up that the
    CLI rows include once, the producer's."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "redpool", "--version"],
            cwd=ROOT,
            env=ENV,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# -- head of line, latency -------------------------------------------------------------------


@dataclass
class HeadOfLine:
    """One slow task among no-op ones, in seconds from the first submission: when the last
    no-op result reached the sink, and when the slow task ended (by its own clock: it was
    still running when the no-op results were all in only if it ended after that)."""

    noops: int
    slow: float
    noops_done: float
    late: int
    """No-op results that reached the sink more than a second after the first submission."""
    slow_ended: float
    slow_done: float
    """When the slow task's result reached the sink."""

    @property
    def slow_running(self) -> bool:
        return self.slow_ended > self.noops_done


def head_of_line(url: str, pipeline: str, noops: int, slow: float) -> HeadOfLine:
    """Half the no-op tasks, the slow one, then the other half, through one producer with
    chunksize auto; the sink runs in a thread here and notes when each result arrived.
    Wall-clock times (time.time()): the slow task reports when it ended in its worker."""
    from redpool.producer import Producer
    from redpool.sink import Sink

    arrived: list[tuple[float, dict[str, Any]]] = []

    def note(result: ResultEnvelope) -> None:
        arrived.append((time.time(), result.body))

    pool = WorkerPool(url, pipeline)
    try:
        with Producer(url, pipeline) as producer:  # joined: the sink waits for its tasks
            drain = threading.Thread(target=Sink(url, pipeline, note).run, daemon=True)
            drain.start()
            started = time.time()
            producer.map("noop", repeat(0, noops // 2))
            producer.map("sleep", [slow])
            producer.map("noop", repeat(0, noops - noops // 2))
        drain.join(timeout=slow + 120)
    finally:
        pool.stop()
    noop_times = [t - started for t, body in arrived if body.get("task") == "noop"]
    slow_ones = [(t - started, body) for t, body in arrived if body.get("task") == "sleep"]
    if len(noop_times) != noops or len(slow_ones) != 1 or not slow_ones[0][1].get("ok"):
        raise RuntimeError(f"bench: head of line: {len(arrived)} results of {noops + 1}")
    (slow_done, body), noops_done = slow_ones[0], max(noop_times)
    late = sum(t > 1.0 for t in noop_times)
    return HeadOfLine(noops, slow, noops_done, late, body["value"] - started, slow_done)


def redpool_latency(url: str, samples: int) -> list[float]:
    """Submit one task to an idle pool and wait for its result; seconds per sample."""
    from redpool.producer import Producer
    from redpool.sink import Sink, SinkSettings

    pool = WorkerPool(url, "latency")
    got: list[object] = []
    sink = Sink(url, "latency", got.append, settings=SinkSettings(block_seconds=1.0))
    out = []
    try:
        with Producer(url, "latency") as producer:
            for i in range(samples):
                t = time.perf_counter()
                producer.submit("noop", i)
                while len(got) <= i:
                    sink.drain_once()
                out.append(time.perf_counter() - t)
                time.sleep(0.002)  # idle pool: let every process go back to waiting
    finally:
        pool.stop()
    return out


# -- redpool.Pool against multiprocessing.Pool -----------------------------------------------


def run_redpool_map(url: str, pipeline: str, task: str, n: int, arg: int) -> Row:
    """``redpool.Pool.map`` (its default chunksize) on a worker host of CORES processes,
    started as users start it; the clock runs around the one ``map`` call, after a warm-up
    map that leaves every process past its first task."""
    from redpool import Pool

    workers = WorkerPool(url, pipeline)
    try:
        with Pool(url, pipeline) as pool:
            pool.map("noop", range(CORES * 2))
            started = time.perf_counter()
            values = pool.map(task, repeat(arg, n))
            seconds = time.perf_counter() - started
    finally:
        workers.stop()
    if len(values) != n:
        raise RuntimeError(f"bench: {pipeline}: {len(values)} results of {n}")
    work = sum(v for v in values if isinstance(v, float))
    return Row("redpool.Pool.map", n, seconds, "default", work=work)


def run_mp_map(fn: Callable[[int], object], n: int, arg: int) -> Row:
    """``multiprocessing.Pool(CORES).map`` (its default chunksize) on the same inputs."""
    with multiprocessing.get_context("fork").Pool(CORES) as pool:
        pool.map(noop, range(CORES * 2))  # warm
        started = time.perf_counter()
        values = pool.map(fn, repeat(arg, n))
        seconds = time.perf_counter() - started
    work = sum(v for v in values if isinstance(v, float))
    return Row(f"multiprocessing.Pool({CORES}).map", n, seconds, "default", work=work)


def pool_apply_latency(url: str, samples: int) -> list[float]:
    """``redpool.Pool.apply`` of one no-op task on an idle pool; seconds per sample."""
    from redpool import Pool

    workers = WorkerPool(url, "apply-latency")
    out = []
    try:
        with Pool(url, "apply-latency") as pool:
            pool.apply("noop", (0,))  # warm: the caller's first round trips, the workers' import
            for i in range(samples):
                started = time.perf_counter()
                pool.apply("noop", (i,))
                out.append(time.perf_counter() - started)
                time.sleep(0.002)  # idle pool: let every process go back to waiting
    finally:
        workers.stop()
    return out


# -- multiprocessing.Pool, bare processes, peers ---------------------------------------------


def run_mp_pool(fn: Callable[[int], object], n: int, arg: int, chunksize: int) -> Row:
    with multiprocessing.get_context("fork").Pool(CORES) as pool:
        pool.map(noop, range(CORES * 2))  # warm
        t = time.perf_counter()
        values = list(pool.imap_unordered(fn, repeat(arg, n), chunksize=chunksize))
        seconds = time.perf_counter() - t
    work = sum(v for v in values if isinstance(v, float))
    return Row(f"Pool({CORES}).imap_unordered", n, seconds, str(chunksize), work=work)


def run_bare(n: int, arg: int) -> Row:
    """CORES forked processes splitting n tasks, no queue at all: this machine's ceiling."""
    started = time.perf_counter()
    readers = []
    for core in range(CORES):
        read, write = os.pipe()
        if os.fork() == 0:
            work = sum(burn(arg) for _ in range(n // CORES + (core < n % CORES)))
            os.write(write, repr(work).encode())
            os._exit(0)
        os.close(write)
        readers.append(read)
    work = 0.0
    for read in readers:
        with os.fdopen(read, "rb") as pipe:
            work += float(pipe.read())
    for _ in readers:
        os.wait()
    seconds = time.perf_counter() - started
    return Row(f"{CORES} bare processes, no queue (the ceiling)", n, seconds, work=work)


PEERS = {  # system: (label, distribution, N for (a))
    "rq-pool": ("RQ {} worker-pool -n 2", "rq", 500),
    "rq-simple": ("RQ {} 2 x SimpleWorker", "rq", 1000),
    "celery": ("Celery {} prefork -c 2", "celery", 3000),
    "dramatiq": ("Dramatiq {} -p 2 -t 8", "dramatiq", 3000),
    "huey": ("Huey {} -k process -w 2", "huey", 3000),
}


def run_peer(system: str, workload: str, n: int, arg: int, url: str) -> Row | None:
    """bench/peer_run.py on the same redis-server (it flushes it); None if not installed."""
    label, dist, _ = PEERS[system]
    if version(dist) == "not installed":
        return None
    client = redis.Redis.from_url(url)
    port = url.rsplit(":", 1)[1].split("/")[0]
    cpu = redis_cpu(client)
    args = [system, workload, str(n), str(arg), port]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "peer_run.py"), *args],
        capture_output=True,
        timeout=900,
    )
    if done.returncode != 0:
        print(f"  {system}: failed: {done.stderr.decode()[-300:]}", file=sys.stderr)
        return None
    out = json.loads(done.stdout)
    row = Row(label.format(version(dist)), n, out["seconds"], work=out["work"])
    row.redis_us = (redis_cpu(client) - cpu) / n * 1e6
    return row
