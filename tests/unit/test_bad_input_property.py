"""Property: whatever lands in the tasks list, workers stay up and valid tasks complete."""

from __future__ import annotations

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer import Producer
from redpool import codec
from redpool.keys import Keys
from redpool.state import snapshot
from sink import Sink
from tests.unit.test_contract import child

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
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
    keys = Keys("prop")
    with Producer(client, "prop", batch_size=3) as p:
        for i, value in enumerate(values):
            if i < len(junk):
                client.rpush(keys.tasks, junk[i])  # interleaved with the real work
            p.submit("echo", value)
        for extra in junk[len(values) :]:
            client.rpush(keys.tasks, extra)
    c = child(client, "prop")
    for _ in range(1000):  # every tick must return, never raise
        if not c.tick() and snapshot(client, keys).idle:
            break
    seen: list[dict[str, object]] = []
    Sink(client, "prop", lambda r: seen.append(codec.loads(r.raw)), block_seconds=0.01).run()
    mine = {str(r["id"]): r for r in seen if r.get("producer") == p.id}
    assert len(mine) == len(values)
    assert [mine[f"{p.id}-{i + 1}"]["value"] for i in range(len(values))] == values
    state = snapshot(client, keys)
    assert state.idle and state.results == 0
    # Everything that was not a valid, answerable task is accounted for in the dead list.
    assert client.llen(keys.dead) + len(seen) >= len(values) + len(junk) - state.stats.get(
        "retried", 0
    )
