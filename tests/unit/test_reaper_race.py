"""Reapers racing on one dead child's tasks: each task comes back exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import redis

from redpool.envelope import encode_task, parse_task
from redpool.keys import Keys
from redpool.registry import Registry
from tests import jobs
from workers.requeue import ALL, Loss, return_tasks


def test_racing_reapers_return_each_task_once(real_redis: redis.Redis, pipeline: str) -> None:
    keys = Keys(pipeline)
    registry = Registry.from_module(jobs)
    inflight = [keys.inflight("ghost", slot) for slot in range(4)]
    for slot, key in enumerate(inflight):
        real_redis.rpush(
            key, *[encode_task(f"{slot}-{i}", "echo", [i], {}, "p") for i in range(250)]
        )
    loss = Loss("lease ran out", charge=ALL)
    start = threading.Barrier(8)

    def reap() -> None:
        client = redis.Redis(connection_pool=real_redis.connection_pool)
        start.wait()
        for key in inflight:
            return_tasks(client, keys, key, loss, registry, "reaper")

    threads = [threading.Thread(target=reap) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    back = [parse_task(raw) for raw in real_redis.lrange(keys.tasks, 0, -1)]
    counts = Counter(env.id for env in back)
    assert len(counts) == 1000 and set(counts.values()) == {1}
    assert {env.attempts for env in back} == {1}
    assert all(real_redis.llen(key) == 0 for key in inflight)
