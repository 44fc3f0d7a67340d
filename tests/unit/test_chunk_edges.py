"""Chunks at their edges: values and chunks too big to write, a cut repeated after a lost
reply, tasks refused right after a cut, chunks whose count lies, replies lost mid-take.
Each of these once lost or doubled a task's result."""

from __future__ import annotations

import contextlib
import types
from collections import Counter
from typing import Any, cast

import orjson
import pytest
import redis

from redpool import task
from redpool.answers import parse_results
from redpool.connection import new_client
from redpool.envelope import MAX_PAYLOAD, parse_unit, split_at, tasks_in
from redpool.errors import PayloadError
from redpool.keys import Keys
from redpool.producer import Producer, ProducerSettings
from redpool.producer.producer import CHUNK_BYTES
from redpool.registry import Registry
from redpool.settings import RedisSettings
from redpool.shard import Shard
from redpool.workers.execute import Executor
from redpool.workers.slots import Slot
from tests.inproc import child, run_until_idle, sink
from tests.redis_server import RedisServer


def test_a_value_too_big_to_write_is_answered_and_dead(fake: redis.Redis, pipeline: str) -> None:
    """10**5000 cannot be written as text: its task fails alone, the child lives on."""
    with Producer(fake, pipeline, ProducerSettings(chunksize=3)) as p:
        p.map("power_of_ten", [1, 5000, 2])
    assert run_until_idle(child(fake, pipeline)) == 3
    pipe = Shard(fake, Keys(pipeline))
    results = {
        orjson.loads(line)["id"]: orjson.loads(line)
        for raw in cast(list[bytes], fake.lrange(pipe.keys.results, 0, -1))
        for line in parse_results(raw).lines
    }
    assert [results[f"{p.id}-{i}"]["ok"] for i in (1, 2, 3)] == [True, False, True]
    assert results[f"{p.id}-2"]["error"]["type"] == "ResultNotJSON"
    assert fake.llen(pipe.keys.dead) == 1


def test_big_tasks_make_small_chunks(fake: redis.Redis, pipeline: str) -> None:
    """2,500 tasks of 7 KB would be a 17 MB element, over every worker's limit: the
    producer halves such a chunk until each element is under CHUNK_BYTES."""
    big = "x" * 7000
    with Producer(fake, pipeline, ProducerSettings(chunksize=2500)) as p:
        p.map("echo", [big] * 2500)
    pipe = Shard(fake, Keys(pipeline))
    elements = cast(list[bytes], fake.lrange(pipe.keys.tasks, 0, -1))
    assert len(elements) > 1 and max(map(len, elements)) <= CHUNK_BYTES
    assert sum(tasks_in(e) for e in elements) == 2500
    run_until_idle(child(fake, pipeline))
    assert sink(fake, pipeline).run().ok == 2500


def test_a_task_no_worker_would_take_is_refused_at_submit(fake: redis.Redis, pipeline: str) -> None:
    with Producer(fake, pipeline) as p, pytest.raises(PayloadError, match="task number 1"):
        p.submit("echo", "x" * MAX_PAYLOAD)


def test_a_cut_repeated_after_a_lost_reply_finds_it_done(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """The EXEC of a cut ran but its reply was lost: the retry must say "cut" (the same
    list), not "could not cut", or the child would send the rest back a second time."""
    with Producer(any_redis, pipeline, ProducerSettings(chunksize=10)) as p:
        p.map("echo", range(10))
    pipe = Shard(any_redis, Keys(pipeline))
    holding = pipe.keys.inflight("w", 0)
    pipe.heartbeat("w", 60, {"processes": 1})
    pipe.take(holding, 1, block=None, host="w")
    kept = pipe.cut(holding, 4)
    assert kept is not None and tasks_in(kept[0]) == 4
    assert pipe.cut(holding, 4) == kept
    assert pipe.snapshot(count_tasks=True).backlog == 6  # the rest went back once


def test_a_task_refused_right_after_a_cut_is_answered_once() -> None:
    """A task refused without running (garbage) just past the cut: handed back, so this
    child must neither answer nor dead-letter it."""
    slot = Slot()

    def cut_here() -> int:
        slot.set_cut(1)  # what the supervisor does while the task runs
        return 1

    module = types.ModuleType("cutting")
    module.cut_here = task(cut_here)  # type: ignore[attr-defined]
    executor = Executor(Registry.from_module(module), "w:0", slot)
    cutter = orjson.dumps({"id": "a", "task": "cut_here", "args": []})
    out = executor.run_batch([cutter, b"not json at all"])
    assert out.stopped_at == 1 and out.dead == [] and out.ok == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"n": 3, "task": "echo", "producer": "p", "first": 1, "args": [[1], [2], [3]]}',
        b'{"n":2,"task":"echo","producer":"p","first":1,"args":[[1],[2],[3]]}',
        b'{"n":5,"id":"x","task":"echo","args":[1]}',
    ],
    ids=["spaces", "wrong-count", "single-with-n"],
)
def test_a_chunk_must_say_its_count_as_redis_reads_it(raw: bytes) -> None:
    """Redis, the supervisor and the sink count an element's tasks by its "n" prefix alone:
    an element whose prefix does not say its count exactly is refused as a whole, and
    never cut in the middle (the supervisor once crashed trying)."""
    with pytest.raises(PayloadError, match='"n"'):
        parse_unit(raw)
    with contextlib.suppress(PayloadError):  # refused, or (counted as 1) never cut inside
        assert split_at([raw], 1) == ([raw], [])


def test_a_lost_reply_to_a_blocking_take_moves_nothing_twice(
    redis_server: RedisServer, pipeline: str
) -> None:
    """redis-py used to send a BLMOVE again after a lost reply: with a second result
    waiting, that moved an element the sink did not know it held, and wrote it twice.
    Here r1 arrives as the sink blocks (the list was empty), and r2 just before BLMOVE's
    reply is lost."""
    client = new_client(RedisSettings.of(redis_server.url))
    other = redis_server.client()
    pipe = Shard(client, Keys(pipeline))
    send, parse = client.execute_command, client.parse_response
    pushed: list[bytes] = []

    def push(raw: bytes) -> None:
        pushed.append(raw)
        other.rpush(pipe.keys.results, raw)

    def execute_command(*args: Any, **options: Any) -> Any:
        if args[0] == "BLMOVE" and not pushed:
            push(b'{"id":"r1","ok":true}')
        return send(*args, **options)  # type: ignore[no-untyped-call]

    def parse_response(conn: Any, name: str, **options: Any) -> Any:
        out = parse(conn, name, **options)  # type: ignore[no-untyped-call]
        if name == "BLMOVE" and out is not None and len(pushed) == 1:
            push(b'{"id":"r2","ok":true}')
            raise redis.ConnectionError("dropped before BLMOVE's reply")
        return out

    client.execute_command = execute_command  # type: ignore[method-assign]
    client.parse_response = parse_response  # type: ignore[assignment, method-assign]
    seen: Counter[bytes] = Counter()
    drain = sink(client, pipeline, lambda r: seen.update([r.raw]))
    while drain.drain_once(block=True) or len(pushed) < 2:
        pass
    assert len(pushed) == 2 and seen == Counter(pushed)
