"""redpool against multiprocessing.Pool, RQ, Celery, Dramatiq and Huey, on this machine, in one run.

usage: python bench/run.py [--quick] [--no-peers] [--cluster]

Starts its own redis-server (never the one on 6379) and prints issue 11's tables, every row
measured in this run: (a) no-op tasks end to end, redpool through its API and its CLI at
chunksize auto, 100 and 1, against Pool(2).imap_unordered and the peers; (b) ~10 ms CPU-bound
tasks, efficiency against the ideal speed-up on all cores; (c) one slow task among no-op ones
(head-of-line blocking); (d) 100,000 and 1,000,000 no-op tasks, the peak RSS and CPU per task
of each role and of Redis; the submit-to-result latency of one task on an idle pool; (e, issue
12) redpool.Pool.map against multiprocessing.Pool.map on no-op and ~10 ms tasks, and
Pool.apply's latency on an idle pool; (f, issue 15) one no-op load over K = 1, 3 and 6 shards
on a local Redis Cluster of 3 masters: tasks/s and Redis CPU per task on each master, and the
throughput N masters could feed; and each of the issues' goals beside what was measured.
`--cluster` runs (f) alone.
Peers live in the optional `bench` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.cluster import MASTERS, SHARDS, Cluster, busiest_us, local_cluster  # noqa: E402
from bench.measure import CORES, Row, calibrate, median  # noqa: E402
from bench.systems import (  # noqa: E402
    PEERS,
    cli_startup,
    head_of_line,
    pool_apply_latency,
    redpool_latency,
    run_api,
    run_bare,
    run_cli,
    run_mp_map,
    run_mp_pool,
    run_peer,
    run_redpool_map,
    write_inputs,
)
from bench.tables import (  # noqa: E402
    BACKLOG,
    PoolResults,
    Results,
    report,
    report_cluster,
)
from bench.work import burn, noop  # noqa: E402
from redpool.embedded import embedded_redis  # noqa: E402

RUNS = 3
"""Runs of each fast system (median shown): this machine's speed drifts from minute to minute."""
CHUNKSIZES = ("auto", "100", "1")


@dataclass(frozen=True)
class Sizes:
    """How many tasks each part runs; ``--quick`` divides them for a fast check."""

    a: int
    a_one: int
    """(a) at chunksize 1: one task per list element is slow, so fewer of them."""
    b: int
    hol: int
    slow: float
    d: tuple[int, int]
    latency: int
    peers_divisor: int
    f: int
    """(f)'s load at every K: long enough (seconds) that the per-master figures are the run's,
    not the start of its takes or each master's own background work."""

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(20_000, 2_000, 200, 6_000, 5.0, (10_000, 100_000), 50, 10, 100_000)
        return cls(200_000, 20_000, 400, 6_000, 5.0, (100_000, 1_000_000), 300, 1, 1_000_000)

    def a_for(self, chunksize: str) -> int:
        return self.a_one if chunksize == "1" else self.a


def by_system(runs: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """Repeated runs grouped by system and chunksize, in the order they first ran."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in runs:
        groups.setdefault((row.system, row.chunksize), []).append(row)
    return groups


def part_a(url: str, sizes: Sizes, tmp: Path) -> list[Row]:
    """(a) no-op tasks: each fast system RUNS times, interleaved, so drift hits all alike."""
    inputs = {n: write_inputs(tmp / f"noop-{n}.jsonl", n, 0) for n in {sizes.a, sizes.a_one}}
    runs: list[Row] = []
    for i in range(RUNS):
        for chunksize in CHUNKSIZES:
            n = sizes.a_for(chunksize)
            runs.append(run_api(url, f"a-api-{chunksize}-{i}", "noop", n, 0, chunksize))
        for chunksize in CHUNKSIZES:
            n = sizes.a_for(chunksize)
            runs.append(run_cli(url, f"a-cli-{chunksize}-{i}", inputs[n], n, chunksize))
        for pool_chunksize in (1, 100):
            runs.append(run_mp_pool(noop, sizes.a_for(str(pool_chunksize)), 0, pool_chunksize))
    return [median(group) for group in by_system(runs).values()]


def part_b(url: str, n: int, burn_n: int) -> list[Row]:
    """(b) CPU-bound tasks, RUNS times interleaved; the run of median efficiency shown."""
    runs: list[Row] = []
    for i in range(RUNS):
        for chunksize in ("auto", "1"):
            runs.append(run_api(url, f"b-{chunksize}-{i}", "burn", n, burn_n, chunksize))
        runs.append(run_mp_pool(burn, n, burn_n, 1))
        runs.append(run_bare(n, burn_n))
    return [median(group, by_efficiency=True) for group in by_system(runs).values()]


def part_peers(url: str, sizes: Sizes, burn_n: int) -> tuple[list[Row], list[Row]]:
    """Each peer once on (a) at its own smaller N, and on (b)."""
    a: list[Row] = []
    b: list[Row] = []
    for system, (_label, _dist, n_peer) in PEERS.items():
        print(f"peer {system} ...", file=sys.stderr)
        if row := run_peer(system, "noop", n_peer // sizes.peers_divisor, 0, url):
            a.append(row)
        if row := run_peer(system, "burn", sizes.b, burn_n, url):
            b.append(row)
    return a, b


def part_pool(url: str, sizes: Sizes, burn_n: int) -> PoolResults:
    """(e) redpool.Pool.map against multiprocessing.Pool.map on the same inputs, no-op and
    ~10 ms tasks, RUNS times interleaved; then Pool.apply's latency on an idle pool."""
    noop_runs: list[Row] = []
    burn_runs: list[Row] = []
    for i in range(RUNS):
        noop_runs.append(run_redpool_map(url, f"e-noop-{i}", "noop", sizes.a, 0))
        noop_runs.append(run_mp_map(noop, sizes.a, 0))
        burn_runs.append(run_redpool_map(url, f"e-burn-{i}", "burn", sizes.b, burn_n))
        burn_runs.append(run_mp_map(burn, sizes.b, burn_n))
    return PoolResults(
        [median(group) for group in by_system(noop_runs).values()],
        [median(group, by_efficiency=True) for group in by_system(burn_runs).values()],
        pool_apply_latency(url, sizes.latency),
    )


def part_d(url: str, sizes: Sizes) -> list[Row]:
    """(d) redpool at scale, each N on an emptied Redis so its memory peak is its own."""
    client = redis.Redis.from_url(url)
    rows = []
    for n in sizes.d:
        client.flushdb()
        rows.append(run_api(url, f"d{n}", "noop", n, 0, "auto", max_backlog=BACKLOG))
    return rows


def part_f(n: int) -> Cluster:
    """(f) the same no-op load (chunksize auto, one worker host of CORES processes, a sink)
    over K shards on a local cluster of MASTERS masters, for each K in SHARDS, RUNS times
    interleaved; of each K, the run of median busiest-master Redis CPU, the figure (f) is
    about (on this machine's cores tasks/s cannot grow with masters)."""
    runs: dict[int, list[Row]] = {k: [] for k in SHARDS}
    with local_cluster(MASTERS) as url:
        version = redis.Redis.from_url(url).info("server")["redis_version"]
        for i in range(RUNS):
            for k in SHARDS:
                row = run_api(
                    url, f"f-{k}-{i}", "noop", n, 0, "auto", shards=k, sample_memory=False
                )
                runs[k].append(row)
    return Cluster({k: median(rows, by=busiest_us) for k, rows in runs.items()}, version)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller N everywhere, a fast check")
    ap.add_argument("--no-peers", action="store_true", help="redpool and Pool only")
    ap.add_argument("--cluster", action="store_true", help="(f) alone: shards on a local cluster")
    opts = ap.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("bench: redis-server is not on PATH")
    sizes = Sizes.of(opts.quick)
    if opts.cluster:
        print("(f) cluster ...", file=sys.stderr)
        report_cluster(part_f(sizes.f))
        return
    burn_n, burn_s = calibrate()
    print(
        f"machine: {platform.platform()}, {CORES} cores, Python {platform.python_version()}\n"
        f"burn: {burn_n} iterations = {burn_s * 1000:.1f} ms",
        file=sys.stderr,
    )
    with embedded_redis() as url, tempfile.TemporaryDirectory(prefix="redpool-bench-") as tmp:
        redis_version = redis.Redis.from_url(url).info("server")["redis_version"]
        print("(a) no-op ...", file=sys.stderr)
        a = part_a(url, sizes, Path(tmp))
        print("(b) cpu-bound ...", file=sys.stderr)
        b = part_b(url, sizes.b, burn_n)
        if not opts.no_peers:
            peers_a, peers_b = part_peers(url, sizes, burn_n)
            a, b = a + peers_a, b + peers_b
        print("(c) head of line ...", file=sys.stderr)
        hol = [head_of_line(url, f"hol{i}", sizes.hol, sizes.slow) for i in range(RUNS)]
        print("(d) scale ...", file=sys.stderr)
        d = part_d(url, sizes)
        print("latency ...", file=sys.stderr)
        latency = redpool_latency(url, sizes.latency)
        print("(e) redpool.Pool ...", file=sys.stderr)
        pool = part_pool(url, sizes, burn_n)
    print("(f) cluster ...", file=sys.stderr)
    cluster = part_f(sizes.f)
    report(Results(a, b, hol, d, latency, cli_startup(), burn_s, redis_version, pool, cluster))


if __name__ == "__main__":
    main()
