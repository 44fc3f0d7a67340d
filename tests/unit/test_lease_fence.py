"""A host's lease fences its children's takes, and reapers find every in-flight list.

A host reaped while its supervisor stalled has children that go on running: whatever they
take must go back at once (the fence), and whatever they took anyway (an orphan list, whose
host is no longer registered) must be found by a reaper and by `status`.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
import redis

from redpool.envelope import encode_task, parse_task
from redpool.keys import Keys
from redpool.pipeline import Sort
from redpool.shard import Shard
from redpool.workers.giveback import ALL, Loss, sorter
from tests.inproc import REGISTRY
from tests.procs import wait_for


def _queue(pipe: Shard, n: int) -> list[bytes]:
    tasks = [encode_task(f"t-{i}", "echo", [i], {}, None) for i in range(n)]
    pipe.client.rpush(pipe.keys.tasks, *tasks)
    return tasks


@pytest.mark.parametrize("count", [1, 40], ids=["native moves", "take.lua"])
def test_a_host_without_a_lease_takes_nothing(
    any_redis: redis.Redis, pipeline: str, count: int
) -> None:
    """Reaped (no lease): the take is undone in the same step, the queue keeps its order."""
    pipe = Shard(any_redis, Keys(pipeline))
    tasks = _queue(pipe, 50)
    holding = pipe.keys.inflight("reaped", 0)
    taken = pipe.take(holding, count, block=None, host="reaped")
    assert (taken.leased, taken.held) == (False, [])
    assert any_redis.lrange(pipe.keys.tasks, 0, -1) == tasks
    assert not any_redis.exists(holding, pipe.keys.held(holding))
    pipe.heartbeat("reaped", 60, {"processes": 1})  # its supervisor came back: takes again
    taken = pipe.take(holding, count, block=None, host="reaped")
    assert taken.leased and taken.held == tasks[:count]


def test_a_lease_that_ran_out_fences_the_take(any_redis: redis.Redis, pipeline: str) -> None:
    """Registered still, but past its expiry (not yet reaped): no take either."""
    pipe = Shard(any_redis, Keys(pipeline))
    tasks = _queue(pipe, 3)
    pipe.heartbeat("late", 0, {"processes": 1})  # expires at once
    taken = pipe.take(pipe.keys.inflight("late", 0), 3, block=None, host="late")
    assert not taken.leased and any_redis.lrange(pipe.keys.tasks, 0, -1) == tasks


def test_an_element_a_blocked_take_brings_after_the_lease_ran_out_goes_back(
    real_redis: redis.Redis, pipeline: str
) -> None:
    """BLMOVE waits on an empty queue while the lease runs out; what it then moves goes back."""
    pipe = Shard(real_redis, Keys(pipeline))
    now = pipe.heartbeat("h", 0.3, {"processes": 1})
    expiry = now + 300
    task = encode_task("t-1", "echo", [1], {}, None)

    def push_once_expired() -> None:
        wait_for(lambda: pipe.leases()[0] > expiry, what="the lease to run out")
        real_redis.rpush(pipe.keys.tasks, task)

    pusher = threading.Thread(target=push_once_expired)
    pusher.start()
    holding = pipe.keys.inflight("h", 0)
    taken = pipe.take(holding, 1, block=5, host="h")
    pusher.join()
    assert (taken.leased, taken.held) == (False, [])
    assert real_redis.lrange(pipe.keys.tasks, 0, -1) == [task]
    assert not real_redis.exists(holding)


def test_a_reaper_gives_back_an_orphan_list(any_redis: redis.Redis, pipeline: str) -> None:
    """An in-flight list whose host is not registered is found by SCAN and given back,
    charged as a dead host's; a live host's list is left alone."""
    pipe = Shard(any_redis, Keys(pipeline))
    orphan, live = pipe.keys.inflight("gone", 3), pipe.keys.inflight("alive", 0)
    any_redis.rpush(orphan, encode_task("o-1", "echo", [1], {}, None))
    pipe.heartbeat("alive", 60, {"processes": 1})
    any_redis.rpush(live, encode_task("l-1", "echo", [2], {}, None))
    assert pipe.snapshot().in_flight == 1  # the registered host's list alone
    assert pipe.snapshot(every_holder=True).in_flight == 2

    def sort_for(wid: str) -> Sort:
        return sorter(Loss(f"{wid} lost", charge=ALL), REGISTRY, "reaper")

    reaped = pipe.reap(sort_for)
    assert [(wid, r.count) for wid, r in reaped] == [("gone", 1)]
    (back,) = pipe.held(pipe.keys.tasks)
    assert parse_task(back).id == "o-1" and parse_task(back).attempts == 1
    assert not any_redis.exists(orphan) and any_redis.llen(live) == 1
    assert pipe.snapshot(every_holder=True).in_flight == 1


def _sort_for(wid: str) -> Sort:
    return sorter(Loss(f"{wid} lost", charge=ALL), REGISTRY, "reaper")


def test_stray_keys_under_the_in_flight_prefix_neither_count_nor_stop_a_reaper(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A string and a list whose name is not UTF-8 where in-flight lists live (a mistake, a
    tool's key): a sweep skips them, status counts around them, and the orphan beside them
    still comes back. Before, the first one made every reaper, and so every host, fail."""
    pipe = Shard(any_redis, Keys(pipeline))
    prefix = pipe.keys.inflight_prefix
    any_redis.set(prefix + "junk:0", b"not a list")
    any_redis.rpush(prefix.encode() + b"\xff\xfe:0", b"x")
    any_redis.rpush(pipe.keys.inflight("gone", 0), encode_task("o-1", "echo", [1], {}, None))
    any_redis.hset(pipe.keys.workers, "junk", b'{"processes": 1}')  # names the string
    assert pipe.snapshot(every_holder=True).in_flight == 1
    assert [(wid, r.count) for wid, r in pipe.reap(_sort_for)] == [("gone", 1)]
    assert any_redis.get(prefix + "junk:0") == b"not a list"


def test_no_host_is_reaped_just_after_the_reapers_own_outage(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """Redis away (or full) for longer than a lease: every lease ran out while the hosts,
    alive, waited as this reaper did. It lets them renew first."""
    pipe = Shard(any_redis, Keys(pipeline))
    pipe.heartbeat("other", 0.001, {"processes": 1})

    def lapsed() -> bool:
        now, leases = pipe.leases()
        return leases["other"] <= now

    wait_for(lapsed, what="its lease to lapse")
    pipe._outage.back_at = time.monotonic()  # this reaper just rode out an outage
    assert pipe.reap(_sort_for, sweep=False) == []
    pipe._outage.back_at = -math.inf
    assert [wid for wid, _ in pipe.reap(_sort_for, sweep=False)] == ["other"]
