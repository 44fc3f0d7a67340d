"""Reapers racing on one dead child's tasks: each task comes back exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from typing import cast

import redis

from redpool.envelope import encode_task, parse_task
from redpool.keys import Keys
from redpool.shard import Shard
from redpool.workers.giveback import ALL, Loss, sorter
from tests.inproc import REGISTRY


def test_racing_reapers_return_each_task_once(real_redis: redis.Redis, pipeline: str) -> None:
    pipe = Shard(real_redis, Keys(pipeline))
    inflight = [pipe.keys.inflight("ghost", slot) for slot in range(4)]
    for slot, key in enumerate(inflight):
        real_redis.rpush(
            key, *[encode_task(f"{slot}-{i}", "echo", [i], {}, "p") for i in range(250)]
        )
    sort = sorter(Loss("lease ran out", charge=ALL), REGISTRY, "reaper")
    start = threading.Barrier(8)

    def reap() -> None:
        mine = Shard(redis.Redis(connection_pool=real_redis.connection_pool), Keys(pipeline))
        start.wait()
        for key in inflight:
            mine.give_back(key, sort)

    threads = [threading.Thread(target=reap) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = cast(list[bytes], real_redis.lrange(pipe.keys.tasks, 0, -1))
    back = [parse_task(raw) for raw in held]
    counts = Counter(env.id for env in back)
    assert len(counts) == 1000 and set(counts.values()) == {1}
    assert {env.attempts for env in back} == {1}
    assert all(real_redis.llen(key) == 0 for key in inflight)
