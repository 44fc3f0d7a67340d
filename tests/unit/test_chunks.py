"""Chunks through the contract: shapes mixed in one queue, and bad chunks, on both backends."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import redis

from redpool.keys import Keys
from redpool.producer import Producer, ProducerSettings
from redpool.shard import Shard
from tests.inproc import child, run_until_idle, sink


def drained(client: redis.Redis, pipeline: str) -> dict[str, dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}

    def keep(result: Any) -> None:
        line = orjson.loads(result.raw)
        assert line["id"] not in seen, f"two results for {line['id']}"
        seen[line["id"]] = line

    drain = sink(client, pipeline, keep)
    while drain.drain_once(block=False):
        pass
    return seen


def test_single_tasks_runs_and_listed_chunks_share_one_queue(
    any_redis: redis.Redis, pipeline: str
) -> None:
    with Producer(any_redis, pipeline) as p:
        singles = [p.submit("add", i, i) for i in range(3)]
        p.submit_many("add", (((i, 1), None) for i in range(10)), chunksize=4)  # runs
        p.submit_many("add", (((i,), {"b": 2}) for i in range(10)), chunksize=4)  # listed
    assert run_until_idle(child(any_redis, pipeline)) == 23
    seen = drained(any_redis, pipeline)
    assert len(seen) == 23 and all(line["ok"] for line in seen.values())
    assert [seen[i]["value"] for i in singles] == [0, 2, 4]
    assert sorted(line["value"] for line in seen.values()) == sorted(
        [0, 2, 4] + [i + 1 for i in range(10)] + [i + 2 for i in range(10)]
    )
    state = Shard(any_redis, Keys(pipeline)).snapshot()
    assert state.submitted == 23 and state.stats["ok"] == 23


def test_bad_chunks_are_dead_with_a_reason_and_good_work_runs(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """Each bad chunk is dead-lettered with a reason a person can act on; a bad task inside
    a chunk is dead alone; everything with an id is answered; good work still runs."""
    pipe = Shard(any_redis, Keys(pipeline))
    huge = b",".join([b"[0]"] * 1_000_000)
    any_redis.rpush(
        pipe.keys.tasks,
        b'{"n":2,"task":"echo","items":{"a":1}}',  # not a list
        b'{"n":3,"task":"echo","items":[5,"x",["fine",[1]]]}',  # wrong item types
        b'{"n":2,"task":"nope","producer":"p","first":1,"args":[[1],[2]]}',  # unknown task
        b'{"n":3,"task":"add","producer":"q","first":1,"args":[[1,2],"bad",[3,4]]}',  # one bad
        b'{"n":1000000,"task":"echo","producer":"r","first":1,"args":[' + huge + b"]}",
    )
    with Producer(any_redis, pipeline, ProducerSettings(chunksize=10)) as p:
        p.map("echo", range(50))
    run_until_idle(child(any_redis, pipeline, unknown_wait=0))  # no other host to wait for
    seen = drained(any_redis, pipeline)
    assert sum(1 for i in seen if i.startswith(p.id)) == 50
    assert seen["fine"]["value"] == 1 and seen["q-1"]["value"] == 3 and seen["q-3"]["value"] == 7
    assert not seen["q-2"]["ok"] and not seen["p-1"]["ok"] and not seen["p-2"]["ok"]
    assert sum(1 for i in seen if i.startswith("r-")) == 5000  # answered up to the chunk limit
    letters = [orjson.loads(x) for x in any_redis.lrange(pipe.keys.dead, 0, -1)]
    reasons = Counter(letter["reason"].split(" (")[0] for letter in letters)
    assert reasons == {
        "field 'items' of a chunk must be a JSON array": 1,
        "a chunk item must be [id, args, kwargs?, attempts?]": 2,
        "unknown task 'nope'": 2,
        "a task's args must be a JSON array": 1,
        "a chunk of 1000000 tasks exceeds the 5000-task limit": 1,
    }
    assert {letter.get("id") for letter in letters if letter["reason"].startswith("unknown")} == {
        "p-1",
        "p-2",
    }
