"""The wire contract's scripts, on fakeredis and on a real redis-server alike."""

from __future__ import annotations

import orjson
import pytest
import redis

from producer import Producer
from redpool.envelope import encode_task
from redpool.errors import StreamClosed
from redpool.keys import Keys
from redpool.registry import Registry
from redpool.scripts import Scripts
from redpool.state import snapshot
from sink import Sink
from tests import jobs
from workers.child import Child
from workers.requeue import ALL, Loss, return_tasks
from workers.settings import WorkerSettings
from workers.slots import Slot

REG = Registry.from_module(jobs)


def child(client: redis.Redis, pipeline: str, index: int = 0, worker: str = "w1") -> Child:
    settings = WorkerSettings(pipeline=pipeline, processes=1, block_seconds=0.01)
    return Child(settings, REG, worker, index, Slot(), client=client)


def test_push_is_exactly_once_per_batch_number(any_redis: redis.Redis, pipeline: str) -> None:
    """A push retried after a lost reply does not enqueue twice."""
    keys, scripts = Keys(pipeline), Scripts.register(any_redis)
    args = ["p1", 1, b"a", b"b"]
    ks = [keys.tasks, keys.producers, keys.stats]
    assert scripts.push(keys=ks, args=args) == 2
    assert scripts.push(keys=ks, args=args) == 2
    assert scripts.push(keys=ks, args=["p1", 2, b"c"]) == 3
    assert int(any_redis.hget(keys.stats, "submitted") or 0) == 3


def test_closed_producer_cannot_push(any_redis: redis.Redis, pipeline: str) -> None:
    p = Producer(any_redis, pipeline)
    p.submit("echo", 1)
    p.close()
    with pytest.raises(StreamClosed):
        p.submit("echo", 2)


def test_stream_closes_only_when_every_producer_closed(
    any_redis: redis.Redis, pipeline: str
) -> None:
    keys = Keys(pipeline)
    assert not snapshot(any_redis, keys).closed  # nobody joined yet
    a, b = Producer(any_redis, pipeline), Producer(any_redis, pipeline)
    a.close()
    assert not snapshot(any_redis, keys).closed
    b.close()
    assert snapshot(any_redis, keys).closed


def test_end_to_end_in_process(any_redis: redis.Redis, pipeline: str) -> None:
    """Producer -> child ticks -> sink: every id exactly once, nothing left behind."""
    with Producer(any_redis, pipeline, batch_size=7) as p:
        assert p.map("echo", range(100)) == 100
        p.submit("add", 2, b=3)
    c = child(any_redis, pipeline)
    while c.tick():
        pass
    seen: list[dict[str, object]] = []
    summary = Sink(
        any_redis, pipeline, lambda r: seen.append(orjson.loads(r.raw)), block_seconds=0.01
    ).run()
    assert summary.ok == 101 and summary.failed == 0
    ids = [r["id"] for r in seen]
    assert len(ids) == len(set(ids)) == 101
    assert sorted(r["value"] for r in seen if r["task"] == "echo") == list(range(100))
    state = snapshot(any_redis, Keys(pipeline))
    assert state.idle and state.results == 0 and state.drained == state.submitted == 101


def test_take_returns_what_is_held_before_taking_more(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A take whose reply was lost is repeated: the holder gets the same items back."""
    keys, scripts = Keys(pipeline), Scripts.register(any_redis)
    any_redis.rpush(keys.tasks, b"1", b"2", b"3")
    first = scripts.take(keys=[keys.tasks, f"redpool:{{{pipeline}}}:h"], args=[2])
    again = scripts.take(keys=[keys.tasks, f"redpool:{{{pipeline}}}:h"], args=[2])
    assert first == again == [b"1", b"2"]
    assert any_redis.lrange(keys.tasks, 0, -1) == [b"3"]


def test_commit_is_fenced_after_a_reaper_gave_the_batch_back(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A child presumed dead that finishes anyway: its results are dropped, the task runs
    again elsewhere, and the sink still sees exactly one result."""
    keys = Keys(pipeline)
    with Producer(any_redis, pipeline) as p:
        p.submit("echo", "once")
    slow = child(any_redis, pipeline, worker="slow")
    held = slow.scripts.take(keys=[keys.tasks, slow.inflight], args=[10])
    assert len(held) == 1
    loss = Loss("lease ran out", charge=ALL)
    assert return_tasks(any_redis, keys, slow.inflight, loss, REG, "reaper") == 1
    assert return_tasks(any_redis, keys, slow.inflight, loss, REG, "reaper2") == 0
    outcome = slow.executor.run_batch(held)
    ks = [slow.inflight, keys.results, keys.dead, keys.delayed, keys.stats]
    assert slow.scripts.commit(keys=ks, args=outcome.script_args(held)) == 0
    fast = child(any_redis, pipeline, worker="fast")
    assert fast.tick() == 1
    results = any_redis.lrange(keys.results, 0, -1)
    assert len(results) == 1
    assert orjson.loads(results[0])["attempts"] == 1  # the lost run counted as an attempt


def test_commit_twice_writes_once(any_redis: redis.Redis, pipeline: str) -> None:
    keys = Keys(pipeline)
    with Producer(any_redis, pipeline) as p:
        p.submit("echo", 1)
    c = child(any_redis, pipeline)
    held = c.scripts.take(keys=[keys.tasks, c.inflight], args=[10])
    args = c.executor.run_batch(held).script_args(held)
    ks = [c.inflight, keys.results, keys.dead, keys.delayed, keys.stats]
    assert c.scripts.commit(keys=ks, args=args) == 1
    assert c.scripts.commit(keys=ks, args=args) == 0
    assert any_redis.llen(keys.results) == 1


def test_ack_twice_counts_once(any_redis: redis.Redis, pipeline: str) -> None:
    keys, scripts = Keys(pipeline), Scripts.register(any_redis)
    any_redis.rpush(keys.results, b"r1", b"r2")
    held = scripts.take(keys=[keys.results, keys.sinking], args=[10])
    for _ in range(2):
        scripts.ack(keys=[keys.sinking, keys.stats], args=[len(held), held[0], 2])
    assert int(any_redis.hget(keys.stats, "drained") or 0) == 2


def test_requeue_charges_only_the_running_task_and_kills_a_poison_one(
    any_redis: redis.Redis, pipeline: str
) -> None:
    keys = Keys(pipeline)
    inflight = keys.inflight("w", 0)
    a = encode_task("a", "echo", [1], {}, "p")
    b = orjson.dumps({"id": "b", "task": "echo", "args": [2], "producer": "p", "attempts": 2})
    c = encode_task("c", "echo", [3], {}, "p")
    any_redis.rpush(inflight, a, b, c)
    assert return_tasks(any_redis, keys, inflight, Loss("died", charge=1), REG, "sup") == 3
    back = any_redis.lrange(keys.tasks, 0, -1)
    assert back == [a, c]  # order kept, at the head; b used its last attempt
    letter = orjson.loads(any_redis.lrange(keys.dead, 0, -1)[0])
    assert letter["id"] == "b" and letter["attempts"] == 3
    result = orjson.loads(any_redis.lrange(keys.results, 0, -1)[0])
    assert result["error"]["type"] == "WorkerLost"


def test_due_retries_are_promoted(any_redis: redis.Redis, pipeline: str) -> None:
    keys, scripts = Keys(pipeline), Scripts.register(any_redis)
    any_redis.zadd(keys.delayed, {b"due": 0, b"later": 2**50})
    assert scripts.promote(keys=[keys.delayed, keys.tasks], args=[10]) == 1
    assert any_redis.lrange(keys.tasks, 0, -1) == [b"due"]
    assert any_redis.zrange(keys.delayed, 0, -1) == [b"later"]


def test_garbage_and_strays_do_not_end_the_stream_early(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A payload pushed by hand gets dead-lettered or answered, but the sink still waits for
    every submitted task."""
    keys = Keys(pipeline)
    any_redis.rpush(keys.tasks, b"garbage", b'{"id": "stray", "task": "echo", "args": [0]}')
    with Producer(any_redis, pipeline) as p:
        p.map("echo", range(3))
    c = child(any_redis, pipeline)
    c.tick()  # garbage and the stray only, if the batch is small
    state = snapshot(any_redis, keys)
    assert state.submitted == 3
    while c.tick():
        pass
    seen: list[bytes] = []
    Sink(any_redis, pipeline, lambda r: seen.append(r.raw), block_seconds=0.01).run()
    ids = sorted(orjson.loads(r)["id"] for r in seen)
    assert ids == sorted([f"{p.id}-{i}" for i in (1, 2, 3)] + ["stray"])
    assert any_redis.llen(keys.dead) == 1


def test_one_sink_per_pipeline(any_redis: redis.Redis, pipeline: str) -> None:
    """A second sink waits as a standby: two would write the same held batch twice."""
    first = Sink(any_redis, pipeline, block_seconds=0.01)
    second = Sink(any_redis, pipeline, block_seconds=0.01)
    assert first._try_lease() and first._try_lease()  # taking and renewing
    assert not second._try_lease()
    with Producer(any_redis, pipeline) as p:
        p.submit("echo", 1)
    c = child(any_redis, pipeline)
    c.tick()
    second.stopping = True
    assert second.run().total == 0  # never got the lease, drained nothing
    assert first.run().total == 1  # runs to completion and gives the lease up
    assert second._try_lease()


def test_largest_batches_fit_through_the_scripts(any_redis: redis.Redis, pipeline: str) -> None:
    """MAX_BATCH items pass through push, take and commit (Lua's unpack has a limit)."""
    from redpool.errors import ConfigError
    from redpool.scripts import MAX_BATCH

    with Producer(any_redis, pipeline, batch_size=MAX_BATCH) as p:
        p.map("echo", range(MAX_BATCH))
    settings = WorkerSettings(
        pipeline=pipeline,
        processes=1,
        max_batch=MAX_BATCH,
        batch_seconds=1000.0,
        block_seconds=0.01,
    )
    c = Child(settings, REG, "big", 0, Slot(), client=any_redis)
    c.batch = MAX_BATCH
    assert c.tick() == MAX_BATCH
    got: list[object] = []
    Sink(any_redis, pipeline, got.append, batch_size=MAX_BATCH, block_seconds=0.01).run()
    assert len(got) == MAX_BATCH
    with pytest.raises(ConfigError):
        Producer(any_redis, pipeline, batch_size=MAX_BATCH + 1)
