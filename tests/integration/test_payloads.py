"""Payloads from a careless or hostile world, against a real redis-server: the run still ends
with exactly one result per submitted task, no sooner and no later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import redis

from redpool.answers import ResultEnvelope
from redpool.keys import Keys
from redpool.producer import Producer
from redpool.registry import Registry
from redpool.shard import Shard
from tests.inproc import REGISTRY, child, sink
from tests.procs import (
    Host,
    assert_exactly_once,
    assert_nothing_left,
    read_results,
    redpool,
    wait_for,
)
from tests.redis_server import RedisServer


def test_a_stray_result_with_any_producer_does_not_end_the_run(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str
) -> None:
    """A dead letter's payload pushed back by hand names a producer that is not in the run:
    its result is written, yet counts for nothing, so the sink does not stop while a
    submitted task's result is still to come."""
    written: list[dict[str, Any]] = []
    with Producer(real_redis, pipeline) as producer:
        ids = [producer.submit("echo", 1), producer.submit("echo", 2)]
    stray = b'{"id":"ghost-1","task":"echo","args":[3],"producer":"ghost"}'
    real_redis.lpush(f"redpool:{{{pipeline}}}:tasks", stray)
    worker = child(real_redis, pipeline, batch=1)
    drain = sink(real_redis, pipeline, lambda r: written.append(r.body))
    assert worker.tick() == 1 and worker.tick() == 1  # the stray's result and the first's
    while drain.drain_once(block=False):
        pass
    assert [r["id"] for r in written] == ["ghost-1", ids[0]]
    assert not drain.done(), "the run ended with a submitted task's result still to come"
    assert worker.tick() == 1
    while drain.drain_once(block=False):
        pass
    assert drain.done() and drain.summary.outcome == "complete"
    assert_exactly_once(written, {*ids, "ghost-1"})
    assert_nothing_left(real_redis, pipeline)


def test_a_task_pushed_by_hand_over_the_size_limit_is_answered_under_its_id(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str
) -> None:
    """A producer refuses a task over the workers' limit; one pushed by hand (here in a
    producer's own shape, as a copy of its dead letter would be) is dead, and its error
    answer, read from the payload's two ends, lets the run end."""
    written: list[ResultEnvelope] = []
    producer = Producer(real_redis, pipeline)
    ids = [producer.submit("echo", 1)]
    big_id = f"{producer.id}-2"
    big = b'{"id":"%b","task":"echo","args":["%b"],"kwargs":{},"producer":"%b"}' % (
        big_id.encode(),
        b"x" * (17 * 1024 * 1024),
        producer.id.encode(),
    )
    real_redis.rpush(f"redpool:{{{pipeline}}}:tasks", big)
    real_redis.hincrby(f"redpool:{{{pipeline}}}:stats", "submitted", 1)  # as push.lua counts
    producer.close()
    worker, drain = child(real_redis, pipeline), sink(real_redis, pipeline, written.append)
    while worker.tick():
        pass
    while drain.drain_once(block=False):
        pass
    assert drain.done(), "the run waits for ever for the oversize task's answer"
    assert_exactly_once([r.body for r in written], {*ids, big_id})
    answer = next(r.body for r in written if r.id == big_id)
    assert answer["ok"] is False and "byte limit" in answer["error"]["message"]
    letter = orjson.loads(real_redis.lindex(f"redpool:{{{pipeline}}}:dead", 0) or b"{}")
    assert letter["id"] == big_id and letter["truncated"] == len(big)
    assert_nothing_left(real_redis, pipeline)


def test_a_rolling_upgrade_gives_a_task_back_for_a_host_that_has_it(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str
) -> None:
    """A host that lacks a task name (not upgraded yet) gives its tasks back, through the
    delayed set, for a host that has it: none is dead, each has its one result."""
    old = Registry([t for t in REGISTRY if t.name != "power_of_ten"])
    pipe = Shard(real_redis, Keys(pipeline))
    with Producer(real_redis, pipeline) as producer:
        producer.map("power_of_ten", [1, 2, 3])
        ids = [producer.submit("power_of_ten", 4), producer.submit("echo", 5)]
    before = child(real_redis, pipeline, registry=old, batch=10)
    while before.tick():
        pass
    assert pipe.dead_count() == 0 and real_redis.llen(pipe.keys.results) == 1  # echo's
    assert real_redis.zcard(pipe.keys.delayed) == 2 and real_redis.llen(pipe.keys.tasks) == 0

    def due() -> bool:  # each may come due in another call: count what is back in the queue
        pipe.promote()
        return bool(real_redis.llen(pipe.keys.tasks) == 2)

    wait_for(due, timeout=10, what="the tasks given back to be due")
    after = child(real_redis, pipeline, index=1, batch=10)
    while after.tick():
        pass
    written: list[dict[str, Any]] = []
    drain = sink(real_redis, pipeline, lambda r: written.append(r.body))
    while drain.drain_once(block=False):
        pass
    assert drain.done() and drain.summary.outcome == "complete"
    assert_exactly_once(written, {f"{producer.id}-{i}" for i in (1, 2, 3)} | set(ids))
    assert len(written) == 5 and all(r["ok"] for r in written) and pipe.dead_count() == 0
    assert_nothing_left(real_redis, pipeline)


def test_poison_payloads_are_dead_and_answered_while_the_children_live(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """Elements that parse yet cannot be shown or read back (nested past what repr takes, a
    lone surrogate or NaN beside a big integer) once killed the child that took them, again
    and again, with the tasks behind them waiting: now each is dead, answered under the ids
    that can be read, no child dies, and the run completes."""
    deep = b"[" * 1010 + b'"x"' + b"]" * 1010
    producer = Producer(real_redis, pipeline)
    me = producer.id.encode()
    poison = [
        b'{"n":2,"task":"echo","producer":"%b","items":[%b,["%b-1",[1]]]}' % (me, deep, me),
        b'{"id":"%b-2","task":"echo","args":["\\ud800",12345678901234567890123],"producer":"%b"}'
        % (me, me),
        b'{"id":"%b-3","task":"echo","args":[NaN,1234567890123456789],"producer":"%b"}' % (me, me),
    ]
    real_redis.rpush(f"redpool:{{{pipeline}}}:tasks", *poison)
    real_redis.hincrby(f"redpool:{{{pipeline}}}:stats", "submitted", 3)  # as push.lua counts
    producer.submitted = 3
    ids = [f"{producer.id}-{i}" for i in (1, 2, 3)] + [producer.submit("echo", 4)]
    producer.close()
    host = Host(redis_server.url, pipeline, "--exit-when-done", log=tmp_path / "w.log")
    out = tmp_path / "r.jsonl"
    sunk = redpool(
        "sink",
        "--redis",
        redis_server.url,
        "--pipeline",
        pipeline,
        "--output",
        str(out),
        timeout=30,
    )
    assert sunk.returncode == 0, sunk.stderr
    assert host.wait(timeout=30) == 0 and "died" not in host.output(), host.output()
    results = read_results(out)
    assert_exactly_once(results, set(ids))
    assert len(results) == 4 and [r["ok"] for r in results if r["id"] == ids[3]] == [True]
    assert Shard(real_redis, Keys(pipeline)).dead_count() == 3
    assert_nothing_left(real_redis, pipeline)
