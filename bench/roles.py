"""A redpool producer or sink as its own process, started ahead and released by "go".

usage: python bench/roles.py produce URL PIPELINE TASK N ARG MAX_BACKLOG (0: none)
       python bench/roles.py sink URL PIPELINE [sum]   (sum: add up the task values)
Each reads one line from stdin before it starts its clock-relevant work, then prints JSON:
the wall-clock time it finished (time.time(), comparable across processes), and its own
peak RSS in MB.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from itertools import repeat


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    role, url, pipeline = sys.argv[1:4]
    if role == "produce":
        from redpool.producer import Producer, ProducerSettings

        task, n, arg, backlog = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
        settings = ProducerSettings(batch_size=1000, max_backlog=backlog or None)
        producer = Producer(url, pipeline, settings)
        gc.freeze()
        sys.stdin.readline()
        cpu = cpu_seconds()
        with producer:
            producer.map(task, repeat(arg, n))
        print(json.dumps({"done": time.time(), "rss_mb": peak_mb(), "cpu": cpu_seconds() - cpu}))
    else:
        import orjson

        from redpool.answers import ResultEnvelope
        from redpool.sink import Sink

        count = 0
        work = 0.0
        sum_values = len(sys.argv) > 4 and sys.argv[4] == "sum"

        def handle(result: ResultEnvelope) -> None:
            nonlocal count, work
            count += 1
            if sum_values:
                work += orjson.loads(result.raw)["value"]

        sink = Sink(url, pipeline, handle)
        gc.freeze()
        sys.stdin.readline()
        cpu = cpu_seconds()
        sink.run()
        print(
            json.dumps(
                {
                    "done": time.time(),
                    "count": count,
                    "rss_mb": peak_mb(),
                    "work": work,
                    "cpu": cpu_seconds() - cpu,
                }
            )
        )


if __name__ == "__main__":
    main()
