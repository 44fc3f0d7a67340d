"""A pipeline of several shards: its layout, how its runs end, and a whole run on one Redis."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from redpool.cluster import SLOTS, slot_of, spread
from redpool.envelope import encode_task
from redpool.errors import ConfigError
from redpool.keys import ABANDONED, COMPLETE, INCOMPLETE, RUNNING, Keys, pipeline_of
from redpool.pipeline import Pipeline
from redpool.producer import Producer, ProducerSettings
from redpool.report import status_text
from tests.inproc import child, run_until_idle, sink


def test_shard_keys_have_a_tag_of_their_own_and_name_their_pipeline() -> None:
    plain, third = Keys("logs"), Keys("logs", 7)
    assert plain.tasks == "redpool:{logs}:tasks" and third.tasks == "redpool:{logs:7}:tasks"
    assert plain.shards == third.shards == "redpool:{logs}:shards"
    assert pipeline_of(third.inflight("h", 0)) == pipeline_of(plain.shards) == "logs"
    assert pipeline_of("redpool:{logs:x}:tasks") is None
    assert slot_of("logs:7") != slot_of("logs")


def test_shards_spread_over_slot_ranges_or_over_masters() -> None:
    """On one Redis: one shard in each of K equal ranges of slots. On a cluster: the masters
    in turn, as they serve the slots (here three masters of equal ranges)."""
    numbers = spread("p", 6, None)
    assert sorted(slot_of(f"p:{n}") * 6 // SLOTS for n in numbers) == list(range(6))

    def owner(slot: int) -> str:
        return "abc"[slot * 3 // SLOTS]

    numbers = spread("p", 6, owner)
    masters = [owner(slot_of(f"p:{n}")) for n in numbers]
    assert masters == ["a", "b", "c", "a", "b", "c"]
    assert len(set(numbers)) == 6


def test_a_whole_run_over_three_shards(any_redis: redis.Redis, pipeline: str) -> None:
    """Batches spread over every shard; a child takes from each; the sink drains each and
    ends the run; every task has exactly one result and nothing is left."""
    settings = ProducerSettings(shards=3, chunksize=1, batch_size=10)
    with Producer(any_redis, pipeline, settings) as producer:
        producer.map("echo", range(90))
    pipe = Pipeline.connect(any_redis, pipeline)
    recorded = any_redis.get(Keys(pipeline).shards)
    assert isinstance(recorded, bytes)
    assert orjson.loads(recorded) == [s.keys.shard for s in pipe.shards]
    for shard in pipe.shards:
        assert int(any_redis.hget(shard.keys.stats, "submitted") or 0) == 30
    assert run_until_idle(child(any_redis, pipeline)) == 90
    seen: list[dict[str, Any]] = []
    summary = sink(any_redis, pipeline, lambda r: seen.append(orjson.loads(r.raw))).run()
    assert summary.outcome == COMPLETE and summary.ok == 90
    assert sorted(r["value"] for r in seen) == list(range(90))
    assert len({r["id"] for r in seen}) == 90
    state = pipe.snapshot()
    assert state.run is not None and state.run.state == COMPLETE
    assert state.submitted == state.drained == 90 and state.idle and state.results == 0
    assert state.shards == 3 and status_text(pipeline, state).startswith(
        f"pipeline {pipeline!r} (3 shards): "
    )


def test_the_number_of_shards_is_fixed_once_the_pipeline_exists(
    any_redis: redis.Redis, pipeline: str
) -> None:
    Pipeline.connect(any_redis, pipeline, shards=4)
    assert len(Pipeline.connect(any_redis, pipeline).shards) == 4
    with pytest.raises(ConfigError, match="has 4 shard\\(s\\), fixed when it was created"):
        Pipeline.connect(any_redis, pipeline, shards=2)
    with Producer(any_redis, f"{pipeline}-plain"):
        pass
    with pytest.raises(ConfigError, match="exists with one shard"):
        Pipeline.connect(any_redis, f"{pipeline}-plain", shards=2)


def test_a_producer_that_joins_the_head_while_the_sink_ends_the_run_keeps_it_going(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """The sink counts the head's producers, ends every other shard's part, then the head's
    only if the count is the same: a producer that joined in between (it may have followed
    to a shard whose part already ended, and pushed there) keeps the run going."""
    pipe = Pipeline.connect(any_redis, pipeline, shards=3)
    run, _ = pipe.join("a", 30)
    pipe.close("a")
    count = len(pipe.head.producer_states())
    assert pipe.head.producer_states() == {"a": b"closed"}
    pipe.head.join("b", 30, sharded=True)  # after the count; not yet followed
    assert all(s.finish_run(run) == COMPLETE for s in pipe.shards[1:])
    for shard in pipe.shards[1:]:  # b follows: the ended parts open again
        assert shard.join("b", 30, follow=run, sharded=True) == (run, False)
    pipe.shards[1].push("b", 1, [encode_task("b-1", "echo", [1], {}, "b")], 1, "echo", 30)
    pipe.close("b")
    # the sink goes on with the count it took before b joined: the head's part does not end
    assert pipe.head.finish_run(run, producers=count) == RUNNING
    assert pipe.finish_run(run) == RUNNING  # b's task is not drained
    assert run_until_idle(child(any_redis, pipeline)) == 1
    assert sink(any_redis, pipeline).run().outcome == COMPLETE
    assert pipe.snapshot().run is not None


def test_a_run_whose_producer_died_before_it_followed_to_the_other_shards_ends(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A producer that joined the head (starting run 2) and died before following: the other
    shards are still at run 1; once it is abandoned, run 2 ends, incomplete."""
    pipe = Pipeline.connect(any_redis, pipeline, shards=3)
    run, _ = pipe.join("a", 30)
    pipe.close("a")
    assert pipe.finish_run(run) == COMPLETE
    second, started = pipe.head.join("ghost", 30, sharded=True)
    assert (second, started) == (run + 1, True)
    pipe.head.leave("ghost", ABANDONED)
    assert pipe.finish_run(second) == INCOMPLETE


@pytest.mark.timeout(30)
def test_a_producer_abandoned_on_the_head_but_open_on_a_shard_does_not_hold_the_run(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """The head's word is final: a producer the head called abandoned, still open on a shard
    whose reaper had just ridden out an outage (so it did not call it so), leaves that shard
    too when the sink ends the run, which ends incomplete instead of never."""
    pipe = Pipeline.connect(any_redis, pipeline, shards=3)
    pipe.join("p", 30)
    pipe.push("p", 1, [encode_task("p-1", "echo", [1], {}, "p")], 1, "echo", 30)  # shard 1
    pipe.head.leave("p", ABANDONED)
    assert pipe.shards[1].producer_states() == {"p": b"1"}
    assert run_until_idle(child(any_redis, pipeline)) == 1
    summary = sink(any_redis, pipeline).run()
    assert summary.outcome == INCOMPLETE and summary.ok == 1
    assert pipe.shards[1].producer_states() == {"p": ABANDONED}


def test_a_mark_recorded_by_hand_holds_on_every_shard(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A sink's first use of a file records its size on every shard: a file emptied in place
    must not keep an older, larger mark on one of them (a restarted sink would not cut back)."""
    pipe = Pipeline.connect(any_redis, pipeline, shards=3)
    pipe.shards[2].record_output("/out", 36_082)
    pipe.record_output("/out", 0)
    assert pipe.output_mark("/out") == 0
    assert [s.output_mark("/out") for s in pipe.shards] == [0, 0, 0]


def test_a_role_opened_with_one_shard_stops_once_the_pipeline_is_created_sharded(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A host or sink that found no record (before the role with --shards created one) would
    serve a layout no one else uses: it says so instead, as one error."""
    plain = Pipeline.connect(any_redis, pipeline)
    plain.check_layout()
    Pipeline.connect(any_redis, pipeline, shards=2)
    with pytest.raises(ConfigError, match="was created with 2 shards after this role started"):
        plain.check_layout()
