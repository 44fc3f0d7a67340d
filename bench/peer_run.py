"""Run one peer job queue on one workload and print {"seconds": ...} as JSON.

usage: python bench/peer_run.py SYSTEM WORKLOAD N ARG PORT
SYSTEM: rq-pool | rq-simple | celery | dramatiq | huey;  WORKLOAD: noop | burn.
Prints the seconds, and the sum of what the tasks returned (for burn: the seconds each took
inside its worker, the work content at the speed the machine had during the run).
Each peer gets 2 worker processes on a redis-server at 127.0.0.1:PORT that it may flush.
Its workers are warmed up with one task first; the clock runs from the first enqueue until
every result was read back (RQ: counted in its finished registry, as the peers' own
scripts in shared/bench do).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYSTEM, WORKLOAD, N, ARG, PORT = (
    sys.argv[1],
    sys.argv[2],
    int(sys.argv[3]),
    int(sys.argv[4]),
    sys.argv[5],
)
os.environ["BENCH_REDIS_PORT"] = PORT
sys.path[:0] = [str(HERE), str(HERE / "peers")]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE / "peers")]))
URL = f"redis://127.0.0.1:{PORT}"


def start(cmds: list[list[str]]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            c, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for c in cmds
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def run_rq() -> tuple[float, float]:
    import rq_jobs
    from redis import Redis
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    r = Redis.from_url(URL)
    r.flushall()
    q = Queue("default", connection=r)
    fn = getattr(rq_jobs, WORKLOAD)
    if SYSTEM == "rq-pool":
        cmds = [["rq", "worker-pool", "-n", "2", "-u", URL, "-q"]]
    else:
        cmds = [["rq", "worker", "-u", URL, "-q", "-w", "rq.worker.SimpleWorker"]] * 2
    procs = start(cmds)
    try:
        registry = FinishedJobRegistry("default", connection=r)
        q.enqueue(fn, 0)  # warm-up: both... at least one worker is up
        while registry.count < 1:
            time.sleep(0.01)
        t = time.perf_counter()
        jobs = q.enqueue_many([Queue.prepare_data(fn, (ARG,)) for _ in range(N)])
        while registry.count < N + 1:
            time.sleep(0.01)
        seconds = time.perf_counter() - t
        return seconds, sum(job.return_value() or 0 for job in jobs)
    finally:
        stop(procs)


def run_celery() -> tuple[float, float]:
    import celery_app
    import redis

    redis.Redis.from_url(URL).flushall()
    procs = start(
        [["celery", "-A", "celery_app", "worker", "-P", "prefork", "-c", "2", "-l", "ERROR"]]
    )
    try:
        fn = getattr(celery_app, WORKLOAD)
        fn.delay(0).get(timeout=120)
        t = time.perf_counter()
        results = [fn.delay(ARG) for _ in range(N)]
        values = [res.get(timeout=600) for res in results]
        return time.perf_counter() - t, sum(values)
    finally:
        stop(procs)


def run_dramatiq() -> tuple[float, float]:
    import dramatiq_app
    import redis

    redis.Redis.from_url(URL).flushall()
    procs = start([["dramatiq", "dramatiq_app", "-p", "2", "-t", "8"]])
    try:
        fn = getattr(dramatiq_app, WORKLOAD)
        fn.send(0).get_result(block=True, timeout=120_000)
        t = time.perf_counter()
        messages = [fn.send(ARG) for _ in range(N)]
        values = [m.get_result(block=True, timeout=600_000) for m in messages]
        return time.perf_counter() - t, sum(values)
    finally:
        stop(procs)


def run_huey() -> tuple[float, float]:
    import huey_app
    import redis

    redis.Redis.from_url(URL).flushall()
    # -q: warnings only, as Celery runs with -l ERROR; the default logs two lines per task
    procs = start([["huey_consumer", "huey_app.huey", "-k", "process", "-w", "2", "-q"]])
    try:
        fn = getattr(huey_app, WORKLOAD)
        fn(0).get(blocking=True, timeout=120)
        t = time.perf_counter()
        results = [fn(ARG) for _ in range(N)]
        values = [res.get(blocking=True, timeout=600) for res in results]
        return time.perf_counter() - t, sum(values)
    finally:
        stop(procs)


RUNNERS = {
    "rq-pool": run_rq,
    "rq-simple": run_rq,
    "celery": run_celery,
    "dramatiq": run_dramatiq,
    "huey": run_huey,
}
seconds, work = RUNNERS[SYSTEM]()
print(json.dumps({"seconds": seconds, "work": work}))
