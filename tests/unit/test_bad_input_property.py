"""Property: whatever lands in the tasks list, workers stay up and valid tasks complete."""

from __future__ import annotations

from typing import Any

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpool import codec
from redpool.keys import Keys
from redpool.producer import Producer, ProducerSettings
from redpool.shard import Shard
from tests.inproc import child, sink

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
task_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(), st.integers(), st.none()),
        "task": st.sampled_from(["echo", "add", "boom", "nope", "os.system", ""]) | st.integers(),
        "args": json_values,
        "kwargs": json_values,
        "attempts": st.one_of(st.integers(-3, 5), st.text()),
    },
)
garbage = st.one_of(
    st.binary(max_size=200),
    json_values.map(codec.dumps),
    task_like.map(codec.dumps),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.lists(garbage, max_size=12), values=st.lists(st.integers(), max_size=20))
def test_garbage_never_hurts_valid_work(junk: list[bytes], values: list[int]) -> None:
    client = fakeredis.FakeRedis()
    pipe = Shard(client, Keys("prop"))
    with Producer(client, "prop", ProducerSettings(batch_size=3)) as p:
        for i, value in enumerate(values):
            if i < len(junk):
                client.rpush(pipe.keys.tasks, junk[i])  # interleaved with the real work
            p.submit("echo", value)
        for extra in junk[len(values) :]:
            client.rpush(pipe.keys.tasks, extra)
    c = child(client, "prop", unknown_wait=0)  # no other host to give an unknown task back for
    for _ in range(1000):  # every tick must return, never raise
        if not c.tick() and pipe.snapshot().idle:
            break
    seen: list[dict[str, Any]] = []
    sink(client, "prop", lambda r: seen.append(codec.loads(r.raw))).run()
    mine = {str(r["id"]): r for r in seen if r.get("producer") == p.id}
    assert len(mine) == len(values)
    assert [mine[f"{p.id}-{i + 1}"]["value"] for i in range(len(values))] == values
    state = pipe.snapshot()
    assert state.idle and state.results == 0 and state.stats.get("retried", 0) == 0
    # Every junk payload ended exactly one way: run (an ok result) or dead (a dead letter,
    # holding the payload as it was), never both, never neither.
    strays = [r for r in seen if r.get("producer") != p.id]
    letters = [codec.loads(x) for x in client.lrange(pipe.keys.dead, 0, -1)]
    assert sum(r["ok"] is True for r in strays) + len(letters) == len(junk)
    assert sum(r["ok"] is False for r in strays) <= len(letters)
    shown = sorted(str(letter["payload"]) for letter in letters)
    assert all(any(s == j.decode("utf-8", "replace") for j in junk) for s in shown)
