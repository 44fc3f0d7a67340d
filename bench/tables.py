"""The benchmark's report: Markdown tables, the lines that compare rows, and issues 11's, 12's
and 15's goals."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass

from bench.cluster import (
    MASTERS,
    PROJECTED,
    Cluster,
    busiest_us,
    cluster_goals,
    projected_rate,
    shares,
)
from bench.measure import CORES, Row, efficiency, version
from bench.systems import HeadOfLine

BACKLOG = 100_000
"""(d) runs with max_backlog, the setting that keeps Redis memory flat as N grows."""
REFERENCE = ("Pool", "100")
"""(a)'s yardstick: multiprocessing.Pool's imap_unordered with chunksize 100."""


@dataclass
class PoolResults:
    """(e) redpool.Pool against multiprocessing.Pool: each system's median run on no-op and on
    ~10 ms tasks, and Pool.apply's seconds per call on an idle pool."""

    noop: list[Row]
    burn: list[Row]
    apply_latency: list[float]

    def ratios(self) -> tuple[float, float]:
        """redpool.Pool.map over multiprocessing.Pool.map: by rate on no-op tasks; by
        efficiency on ~10 ms tasks (the work measured where it ran: drift-proof)."""
        ours, theirs = find(self.noop, "redpool", "default"), find(self.noop, "multi", "default")
        noop = ours.rate / theirs.rate if ours and theirs and theirs.rate else 0.0
        ours, theirs = find(self.burn, "redpool", "default"), find(self.burn, "multi", "default")
        burn = efficiency(ours) / efficiency(theirs) if ours and theirs else 0.0
        return noop, burn


@dataclass
class Results:
    a: list[Row]
    b: list[Row]
    hol: list[HeadOfLine]
    d: list[Row]
    latency: list[float]
    cli_startup: float
    """Seconds `python -m redpool --version` takes: a CLI row's producer start-up."""
    burn_s: float
    redis_version: str
    pool: PoolResults
    cluster: Cluster


def find(rows: list[Row], system: str, chunksize: str) -> Row | None:
    """The row of ``system`` (its name's start) with ``chunksize``, if it ran."""
    return next((r for r in rows if r.system.startswith(system) and r.chunksize == chunksize), None)


def table(header: list[str], lines: list[list[str]]) -> None:
    """A Markdown table; the first column left-aligned, the others right-aligned."""
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for line in lines:
        print("| " + " | ".join(line) + " |")


def header(redis_version: str) -> None:
    print(
        f"\nredpool {version('redpool')} on {platform.machine()}, {CORES} cores, "
        f"Python {platform.python_version()}, redis-server {redis_version}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def report(res: Results) -> None:
    header(res.redis_version)
    report_a(res.a, res.cli_startup)
    report_b(res.b, res.burn_s)
    report_hol(res.hol)
    report_d(res.d)
    lat_ms = sorted(x * 1000 for x in res.latency)
    print(
        f"\nLatency, one task on an idle pool, submit to result in the sink ({len(lat_ms)} "
        f"samples): median {statistics.median(lat_ms):.2f} ms, "
        f"p90 {lat_ms[int(len(lat_ms) * 0.9)]:.2f} ms"
    )
    report_pool(res.pool, res.burn_s)
    report_f(res.cluster)
    report_goals(res)


def report_cluster(cluster: Cluster) -> None:
    """(f) alone (``--cluster``): its table, projection and goals."""
    header(cluster.redis_version)
    report_f(cluster)
    goals_table(cluster_goals(cluster))


def report_a(rows: list[Row], cli_startup: float) -> None:
    reference = find(rows, *REFERENCE)
    pool_rate = reference.rate if reference else 0.0
    auto = find(rows, "redpool API", "auto")
    auto_rate = auto.rate if auto else 0.0
    print(f"\n(a) no-op tasks, end to end (redpool: producer, {CORES} worker processes, sink)\n")
    table(
        [
            "system",
            "chunksize",
            "N",
            "runs",
            "tasks/s",
            "ratio to Pool(chunksize=100)",
            "redpool API auto is x faster",
            "Redis CPU µs/task",
        ],
        [
            [
                r.system,
                r.chunksize,
                f"{r.n:,}",
                str(r.runs),
                f"{r.rate:,.0f}",
                f"{r.rate / pool_rate:.3f}" if pool_rate else "-",
                f"{auto_rate / r.rate:,.1f}" if auto_rate else "-",
                f"{r.redis_us:.2f}" if r.redis_us is not None else "-",
            ]
            for r in rows
        ],
    )
    print()
    for way in ("API", "CLI"):
        ratio = auto_to_best(rows, way)
        if ratio is not None:
            print(f"{way}: auto's rate over the best fixed chunksize's (100 or 1): {ratio:.2f}")
    print(
        "\nCLI rows: clock from starting `redpool produce --input` (the sink already waiting) "
        f"until `redpool sink --output` exited; includes the producer's start-up, "
        f"{cli_startup * 1000:.0f} ms for `python -m redpool --version` here"
    )


def auto_to_best(rows: list[Row], way: str) -> float | None:
    """(a): auto's rate over the better of chunksize 100 and 1, for the API or the CLI."""
    auto = find(rows, f"redpool {way}", "auto")
    fixed = [r for c in ("100", "1") if (r := find(rows, f"redpool {way}", c))]
    if auto is None or not fixed:
        return None
    return auto.rate / max(r.rate for r in fixed)


def report_b(rows: list[Row], burn_s: float) -> None:
    print(
        f"\n(b) CPU-bound tasks of {burn_s * 1000:.1f} ms, efficiency = ideal {CORES}-core "
        "time (the work as measured where it ran) / wall time\n"
    )
    table(
        ["system", "chunksize", "N", "runs", "wall s", "efficiency"],
        [
            [
                r.system,
                r.chunksize,
                f"{r.n:,}",
                str(r.runs),
                f"{r.seconds:.2f}",
                f"{efficiency(r):.3f}",
            ]
            for r in rows
        ],
    )
    ratio = auto_to_one(rows)
    if ratio is not None:
        print(f"\nredpool efficiency, chunksize auto / chunksize 1: {ratio:.3f}")


def auto_to_one(rows: list[Row]) -> float | None:
    auto, one = find(rows, "redpool", "auto"), find(rows, "redpool", "1")
    if auto is None or one is None:
        return None
    return efficiency(auto) / efficiency(one)


def report_hol(runs: list[HeadOfLine]) -> None:
    hol = runs[0]
    print(
        f"\n(c) head of line: {hol.noops // 2:,} no-op tasks, one {hol.slow:g} s task, "
        f"{hol.noops - hol.noops // 2:,} more no-op tasks, one producer, chunksize auto, "
        f"{CORES} worker processes; seconds from the first submission, each run shown\n"
    )
    table(
        [
            "run",
            "every no-op result in the sink",
            "no-op results later than 1 s",
            "slow task ended",
            "slow task still running then",
            "its result in the sink",
        ],
        [
            [
                str(i),
                f"{r.noops_done:.3f}",
                f"{r.late:,} of {r.noops:,}",
                f"{r.slow_ended:.3f}",
                "yes" if r.slow_running else "no",
                f"{r.slow_done:.3f}",
            ]
            for i, r in enumerate(runs, 1)
        ],
    )


def report_d(rows: list[Row]) -> None:
    print(
        f"\n(d) redpool at scale: no-op tasks through the API, chunksize auto, "
        f"max_backlog={BACKLOG:,}; peak RSS per role and peak Redis used_memory (MB)\n"
    )
    roles = ["producer", "supervisor", "worker child", "sink", "redis"]
    table(
        ["N", "tasks/s", *roles[:-1], "Redis memory", "Redis CPU µs/task"],
        [
            [
                f"{r.n:,}",
                f"{r.rate:,.0f}",
                *(f"{r.rss[role]:.0f}" for role in roles),
                f"{r.redis_us or 0:.2f}",
            ]
            for r in rows
        ],
    )
    cpu = rows[-1].cpu_us
    print(
        f"\nWhere the time goes at N={rows[-1].n:,} (CPU µs per task): producer "
        f"{cpu['producer']:.2f}, workers {cpu['workers']:.2f}, sink {cpu['sink']:.2f}, "
        f"Redis {cpu['redis']:.2f}; total {sum(cpu.values()):.2f} on {CORES} cores"
    )


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    """Median and p90, in ms."""
    ms = sorted(x * 1000 for x in seconds)
    return statistics.median(ms), ms[int(len(ms) * 0.9)]


def report_pool(pool: PoolResults, burn_s: float) -> None:
    print(
        f"\n(e) redpool.Pool.map ({CORES} worker processes on this host) against "
        f"multiprocessing.Pool({CORES}).map, each at its default chunksize, same inputs\n"
    )
    noop_ratio, burn_ratio = pool.ratios()
    rows = [("no-op", r, noop_ratio) for r in pool.noop]
    rows += [(f"{burn_s * 1000:.0f} ms CPU", r, burn_ratio) for r in pool.burn]
    table(
        ["system", "tasks", "N", "runs", "tasks/s", "efficiency", "redpool / Pool"],
        [
            [
                r.system,
                tasks,
                f"{r.n:,}",
                str(r.runs),
                f"{r.rate:,.0f}",
                f"{efficiency(r):.3f}" if r.work else "-",
                f"{ratio:.3f}" if r.system.startswith("redpool") else "-",
            ]
            for tasks, r, ratio in rows
        ],
    )
    median_ms, p90_ms = percentiles_ms(pool.apply_latency)
    print(
        "\nredpool / Pool: by tasks/s on no-op tasks, by efficiency on CPU tasks.\n"
        f"redpool.Pool.apply, one no-op task on an idle pool ({len(pool.apply_latency)} "
        f"samples): median {median_ms:.2f} ms, p90 {p90_ms:.2f} ms"
    )


def report_goals(res: Results) -> None:
    """Issue 11's benchmark goals, each with the figure this run measured."""
    reference = find(res.a, *REFERENCE)
    fast = [r for r in res.a if r.system.startswith("redpool") and r.chunksize != "1"]
    ratio = min(r.rate for r in fast) / reference.rate if fast and reference else 0.0
    redis_us = max((r.redis_us or 0.0) for r in fast) if fast else 0.0
    auto_b = find(res.b, "redpool", "auto")
    auto_eff = efficiency(auto_b) if auto_b else 0.0
    bare = find(res.b, "2 bare processes", "-")
    ceiling = efficiency(bare) if bare else 1.0
    worst = max(res.hol, key=lambda r: r.noops_done)
    running = all(r.slow_running for r in res.hol)
    roles = [role for role in res.d[0].rss if role != "redis"]
    biggest = max(r.rss[role] for r in res.d for role in roles)
    growth = max(res.d[-1].rss[role] - res.d[0].rss[role] for role in roles)
    best, one = auto_to_best(res.a, "API") or 0.0, auto_to_one(res.b) or 0.0
    goals = [
        ("(a) auto and 100, API and CLI: lowest ratio to Pool(100)", ratio, ">= 0.3", ratio >= 0.3),
        ("(a) those rows: highest Redis CPU µs/task", redis_us, "< 0.3", redis_us < 0.3),
        ("(b) efficiency with auto", auto_eff, ">= 0.95", auto_eff >= 0.95),
        ("(b) that, over the ceiling's (2 bare processes)", auto_eff / ceiling, "-", True),
        (
            "(c) worst run: s until every no-op result is in the sink, slow task running",
            worst.noops_done,
            "< 1",
            worst.noops_done < 1.0 and running,
        ),
        ("(d) largest peak RSS of a role, MB", biggest, "< 150", biggest < 150),
        (
            f"(d) most a role grew from N={res.d[0].n:,} to {res.d[-1].n:,}, MB",
            growth,
            "< 10 (flat)",
            growth < 10,
        ),
        ("auto / best fixed chunksize, no-op, API", best, ">= 0.8", best >= 0.8),
        ("auto / chunksize 1 efficiency, 10 ms tasks", one, ">= 0.97", one >= 0.97),
        *pool_goals(res.pool),
        *cluster_goals(res.cluster),
    ]
    goals_table(goals)


def goals_table(goals: list[tuple[str, float, str, bool]]) -> None:
    print("\nThe issues' goals, as measured in this run:\n")
    table(
        ["goal", "measured", "target", "met"],
        [
            [name, f"{value:.3g}", target, "yes" if met else "no"]
            for name, value, target, met in goals
        ],
    )


def pool_goals(pool: PoolResults) -> list[tuple[str, float, str, bool]]:
    """Issue 12's goals: redpool.Pool against multiprocessing.Pool, and apply's latency."""
    noop, burn = pool.ratios()
    median_ms, p90_ms = percentiles_ms(pool.apply_latency)
    return [
        ("(12) Pool.map / multiprocessing.Pool.map, no-op tasks", noop, ">= 0.25", noop >= 0.25),
        ("(12) the same, ~10 ms tasks (efficiency)", burn, ">= 0.95", burn >= 0.95),
        ("(12) Pool.apply on an idle pool, median ms", median_ms, "< 2", median_ms < 2),
        ("(12) Pool.apply on an idle pool, p90 ms", p90_ms, "-", True),
    ]


def report_f(cluster: Cluster) -> None:
    rows = cluster.rows
    one = busiest_us(rows[1]) if 1 in rows else 0.0
    n = next(iter(rows.values())).n
    print(
        f"\n(f) {n:,} no-op tasks through the API, chunksize auto, {CORES} worker processes "
        f"on one host, a sink, over K shards on a local Redis Cluster of {MASTERS} masters "
        "(no replicas, no persistence); Redis CPU (INFO cpu) per task of the run, on each "
        "master\n"
    )
    table(
        [
            "shards K",
            "runs",
            "tasks/s",
            "Redis CPU µs/task, all masters",
            "busiest master µs/task",
            "busiest / K=1's",
            "masters' shares (by port)",
            "sink CPU µs/task",
        ],
        [
            [
                str(k),
                str(r.runs),
                f"{r.rate:,.0f}",
                f"{r.redis_us or 0:.3f}",
                f"{busiest_us(r):.3f}",
                f"{busiest_us(r) / one:.2f}" if one else "-",
                shares(r),
                f"{r.cpu_us['sink']:.2f}",
            ]
            for k, r in rows.items()
        ],
    )
    report_projection(cluster)


def report_projection(cluster: Cluster) -> None:
    """The throughput N masters could feed, from the busiest master at the largest K."""
    k = max(cluster.rows)
    row = cluster.rows[k]
    served = busiest_us(row) * MASTERS
    rates = ", ".join(f"{m}: {projected_rate(row, m):,.0f}" for m in PROJECTED)
    print(
        f"\nProjected tasks/s for N masters, one Redis core each, from K={k}: the busiest "
        f"master spent {busiest_us(row):.3f} µs per task of the pipeline, {served:.3f} µs per "
        f"task it served (x {MASTERS} masters), so rate(N) = N x 1e6 / {served:.3f}. "
        f"N masters (K >= N shards) -> tasks/s: {rates}. Assumes producers and worker hosts "
        "scale out with hosts, so Redis is the bottleneck. One sink drains every shard: at "
        f"{row.cpu_us['sink']:.2f} µs/task it alone tops out at "
        f"{1e6 / row.cpu_us['sink']:,.0f} tasks/s, whatever N."
    )
