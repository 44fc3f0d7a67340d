"""A redpool producer or sink as its own process, started ahead and released by "go".

usage: python bench/roles.py produce URL PIPELINE TASK N ARG MAX_BACKLOG CHUNKSIZE [SHARDS]
       (MAX_BACKLOG 0: none; CHUNKSIZE a number or auto)
       python bench/roles.py sink URL PIPELINE sum|- [SHARDS]   (sum: add up the task values)
Each prints "ready" once it is connected (the producer has joined the stream), reads one line
from stdin before it starts its clock-relevant work, then prints JSON:
the wall-clock time it finished (time.time(), comparable across processes), its own peak
RSS in MB and the CPU seconds it used after "go".
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from itertools import repeat
from typing import Any


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def produce(url: str, pipeline: str, args: list[str]) -> dict[str, Any]:
    from redpool.producer import Producer, ProducerSettings
    from redpool.producer.producer import Chunksize

    task, n, arg, backlog = args[0], int(args[1]), int(args[2]), int(args[3])
    chunksize: Chunksize = "auto" if args[4] == "auto" else int(args[4])
    shards = int(args[5]) if len(args) > 5 else None
    settings = ProducerSettings(max_backlog=backlog or None, chunksize=chunksize, shards=shards)
    producer = Producer(url, pipeline, settings)
    gc.freeze()
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = cpu_seconds()
    with producer:
        producer.map(task, repeat(arg, n))
    return {"done": time.time(), "rss_mb": peak_mb(), "cpu": cpu_seconds() - cpu}


def sink(url: str, pipeline: str, args: list[str]) -> dict[str, Any]:
    import orjson

    from redpool.answers import ResultEnvelope
    from redpool.sink import Sink, SinkSettings

    count = 0
    work = 0.0
    sum_values = args[:1] == ["sum"]

    def handle(result: ResultEnvelope) -> None:
        nonlocal count, work
        count += 1
        if sum_values:
            work += orjson.loads(result.raw)["value"]

    settings = SinkSettings(shards=int(args[1]) if len(args) > 1 else None)
    drain = Sink(url, pipeline, handle, settings=settings)
    gc.freeze()
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = cpu_seconds()
    drain.run()
    return {
        "done": time.time(),
        "count": count,
        "rss_mb": peak_mb(),
        "work": work,
        "cpu": cpu_seconds() - cpu,
    }


def main() -> None:
    role, url, pipeline = sys.argv[1:4]
    run = produce if role == "produce" else sink
    print(json.dumps(run(url, pipeline, sys.argv[4:])))


if __name__ == "__main__":
    main()
