"""The wire contract through `Pipeline`, on fakeredis and on a real redis-server alike."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from redpool.answers import Outcome, parse_results
from redpool.deadletters import Selection
from redpool.envelope import encode_task
from redpool.errors import SettingError, StreamClosed
from redpool.holding import Taken
from redpool.keys import Keys, Stat
from redpool.pipeline import MAX_BATCH, Pipeline
from redpool.producer import Producer, ProducerSettings
from redpool.shard import Shard
from redpool.workers.giveback import ALL, Loss, sorter
from tests.inproc import REGISTRY, child, run_until_idle, sink
from tests.procs import wait_for


def test_push_is_exactly_once_per_batch_number(any_redis: redis.Redis, pipeline: str) -> None:
    """A push retried after a lost reply does not enqueue twice."""
    pipe = Shard(any_redis, Keys(pipeline))
    pipe.join("p1", 30)
    assert pipe.push("p1", 1, [b"a", b"b"], 2, "t", 30) == (2, None)
    assert pipe.push("p1", 1, [b"a", b"b"], 2, "t", 30) == (2, None)
    assert pipe.push("p1", 2, [b"c"], 1, "t", 30) == (3, None)
    assert pipe.snapshot().submitted == 3


def test_closed_producer_cannot_push(any_redis: redis.Redis, pipeline: str) -> None:
    p = Producer(any_redis, pipeline)
    p.submit("echo", 1)
    p.close()
    with pytest.raises(StreamClosed):
        p.submit("echo", 2)
    with pytest.raises(StreamClosed):  # the script refuses too, not only this object
        Shard(any_redis, Keys(pipeline)).push(p.id, 99, [b"x"], 1, "echo", 30)


def test_stream_closes_only_when_every_producer_closed(
    any_redis: redis.Redis, pipeline: str
) -> None:
    pipe = Shard(any_redis, Keys(pipeline))
    assert not pipe.snapshot().closed  # nobody joined yet
    a, b = Producer(any_redis, pipeline), Producer(any_redis, pipeline)
    a.close()
    assert not pipe.snapshot().closed
    b.close()
    assert pipe.snapshot().closed


def test_end_to_end_in_process(any_redis: redis.Redis, pipeline: str) -> None:
    """Producer -> child ticks -> sink: every id exactly once, nothing left behind."""
    with Producer(any_redis, pipeline, ProducerSettings(batch_size=7)) as p:
        assert p.map("echo", range(100)) == 100
        p.submit("add", 2, b=3)
    assert run_until_idle(child(any_redis, pipeline)) == 101
    seen: list[dict[str, Any]] = []
    summary = sink(any_redis, pipeline, lambda r: seen.append(orjson.loads(r.raw))).run()
    assert summary.ok == 101 and summary.failed == 0
    ids = [r["id"] for r in seen]
    assert len(ids) == len(set(ids)) == 101
    assert sorted(r["value"] for r in seen if r["task"] == "echo") == list(range(100))
    state = Shard(any_redis, Keys(pipeline)).snapshot()
    assert state.idle and state.results == 0 and state.drained == state.submitted == 101


def test_take_returns_what_is_held_before_taking_more(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A take whose reply was lost is repeated: the holder gets the same items back."""
    pipe = Shard(any_redis, Keys(pipeline))
    pipe.join("p", 30)
    pipe.push("p", 1, [b"1", b"2", b"3"], 3, "t", 30)
    holding = pipe.keys.inflight("w", 0)
    pipe.heartbeat("w", 60, {"processes": 1})
    first = pipe.take(holding, 2, block=None, host="w")
    again = pipe.take(holding, 0, block=None, host="w")
    assert first.held == again.held == [b"1", b"2"]
    assert pipe.backlog() == 1


def test_commit_is_fenced_after_a_reaper_gave_the_batch_back(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A child presumed dead that finishes anyway: its results are dropped, the task runs
    again elsewhere, and the sink still sees exactly one result."""
    pipe = Shard(any_redis, Keys(pipeline))
    with Producer(any_redis, pipeline) as p:
        p.submit("echo", "once")
    slow = child(any_redis, pipeline, worker="slow")
    held_by_slow = Keys(pipeline).inflight(slow.worker_id, slow.index)
    taken = pipe.take(held_by_slow, 10, block=None, host="slow")
    assert len(taken.held) == 1
    sort = sorter(Loss("lease ran out", charge=ALL), REGISTRY, "reaper")
    assert pipe.give_back(held_by_slow, sort).back != []
    assert pipe.give_back(held_by_slow, sort).back == []  # a second reaper finds nothing
    outcome = slow.executor.run_batch(taken.held)
    assert pipe.commit(held_by_slow, taken, 1, outcome) == 0
    fast = child(any_redis, pipeline, worker="fast")
    assert fast.tick() == 1
    results = any_redis.lrange(pipe.keys.results, 0, -1)
    assert len(results) == 1
    assert orjson.loads(results[0])["attempts"] == 1  # the lost run counted as an attempt


def test_a_repeated_commit_writes_once_and_says_it_had_gone_through(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A commit whose reply was lost is sent again: nothing is written twice, and the holder
    learns that it went through (2), not that its batch was taken away (0)."""
    pipe = Shard(any_redis, Keys(pipeline))
    with Producer(any_redis, pipeline) as p:
        p.submit("echo", 1)
    c = child(any_redis, pipeline)
    held_by_c = Keys(pipeline).inflight(c.worker_id, c.index)
    taken = pipe.take(held_by_c, 10, block=None, host="w1")
    outcome = c.executor.run_batch(taken.held)
    assert pipe.commit(held_by_c, taken, 1, outcome) == 1
    assert pipe.commit(held_by_c, taken, 1, outcome) == 2
    other = Taken(taken.held, b"another")
    assert pipe.commit(held_by_c, other, 1, outcome) == 0
    assert any_redis.llen(pipe.keys.results) == 1


def test_ack_twice_counts_once(any_redis: redis.Redis, pipeline: str) -> None:
    pipe = Shard(any_redis, Keys(pipeline))
    any_redis.rpush(pipe.keys.results, b"r1", b"r2")
    taken = pipe.take_results(10, block=None)
    assert pipe.ack(taken, 2, 2) == 1 and pipe.ack(taken, 2, 2) == 2  # the second: a lost reply
    assert pipe.snapshot().drained == 2


def test_give_back_charges_only_the_running_task_and_kills_a_poison_one(
    any_redis: redis.Redis, pipeline: str
) -> None:
    pipe = Shard(any_redis, Keys(pipeline))
    inflight = pipe.keys.inflight("w", 0)
    a = encode_task("a", "echo", [1], {}, "p")
    b = orjson.dumps({"id": "b", "task": "echo", "args": [2], "producer": "p", "attempts": 2})
    c = encode_task("c", "echo", [3], {}, "p")
    any_redis.rpush(inflight, a, b, c)
    returned = pipe.give_back(inflight, sorter(Loss("died", charge=1), REGISTRY, "sup"))
    assert (len(returned.back), len(returned.dead)) == (2, 1)
    assert any_redis.lrange(pipe.keys.tasks, 0, -1) == [a, c]  # order kept; b used its last
    letter = orjson.loads(any_redis.lrange(pipe.keys.dead, 0, -1)[0])
    assert letter["id"] == "b" and letter["attempts"] == 3
    result = orjson.loads(any_redis.lrange(pipe.keys.results, 0, -1)[0])
    assert result["error"]["type"] == "WorkerLost"
    assert pipe.snapshot().stats[Stat.REQUEUED] == 2 and pipe.snapshot().stats[Stat.FAILED] == 1


def test_due_retries_are_promoted(any_redis: redis.Redis, pipeline: str) -> None:
    pipe = Shard(any_redis, Keys(pipeline))
    holding = pipe.keys.inflight("w", 0)
    pipe.heartbeat("w", 60, {"processes": 1})
    pipe.join("p", 30)
    pipe.push("p", 1, [b"x"], 1, "t", 30)
    taken = pipe.take(holding, 1, block=None, host="w")
    outcome = Outcome(retries=[(0, b"due"), (2**40, b"later")])
    assert pipe.commit(holding, taken, 1, outcome) == 1
    assert pipe.promote(10) == 1
    assert any_redis.lrange(pipe.keys.tasks, 0, -1) == [b"due"]
    assert any_redis.zrange(pipe.keys.delayed, 0, -1) == [b"later"]
    assert pipe.snapshot().stats[Stat.RETRIED] == 2


def test_garbage_and_strays_do_not_end_the_stream_early(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """Payloads pushed by hand get dead-lettered or answered, and their results drained,
    while the sink still waits for every submitted task: here two answered strays outnumber
    the one submitted task that has not run yet."""
    pipe = Shard(any_redis, Keys(pipeline))
    strays = [orjson.dumps({"id": f"stray-{i}", "task": "echo", "args": [i]}) for i in (1, 2)]
    any_redis.rpush(pipe.keys.tasks, b"garbage", *strays)
    with Producer(any_redis, pipeline) as p:
        p.submit("echo", 0)
    c = child(any_redis, pipeline, batch=1)
    while any_redis.llen(pipe.keys.results) < 2:  # the garbage and the strays, not the task
        assert c.tick()
    assert pipe.snapshot().backlog == 1
    seen: list[bytes] = []
    drain = sink(any_redis, pipeline, lambda r: seen.append(r.raw))
    assert drain.drain_once(block=False) == 2  # the strays' results
    assert not drain.done(), "strays' results must not count toward the end of the stream"
    assert run_until_idle(c) == 1
    drain.run()
    ids = sorted(orjson.loads(r)["id"] for r in seen)
    assert ids == sorted([f"{p.id}-1", "stray-1", "stray-2"])
    assert any_redis.llen(pipe.keys.dead) == 1


def test_one_sink_per_pipeline(any_redis: redis.Redis, pipeline: str) -> None:
    """A second sink waits as a standby: two would write the same held batch twice."""
    first = sink(any_redis, pipeline)
    second = sink(any_redis, pipeline)
    assert first.claim() and first.claim()  # taking and renewing
    assert not second.claim()
    with Producer(any_redis, pipeline) as p:
        p.submit("echo", 1)
    child(any_redis, pipeline).tick()
    second.stopping = True
    assert second.run().total == 0  # never got the lease, drained nothing
    assert first.run().total == 1  # runs to completion and gives the lease up
    assert second.claim()


def test_largest_batches_fit_through_the_scripts(any_redis: redis.Redis, pipeline: str) -> None:
    """MAX_BATCH single tasks pass through push, take and commit (Lua's unpack has a
    limit); the first tick stops after one, to learn the task's pace."""
    settings = ProducerSettings(batch_size=MAX_BATCH, chunksize=1)
    with Producer(any_redis, pipeline, settings) as p:
        p.map("echo", range(MAX_BATCH + 1))
    c = child(any_redis, pipeline, batch=MAX_BATCH)
    assert c.tick() == 1
    assert c.tick() == MAX_BATCH
    got: list[object] = []
    sink(any_redis, pipeline, got.append, batch_size=MAX_BATCH).run()
    assert len(got) == MAX_BATCH + 1
    with pytest.raises(SettingError):
        ProducerSettings(batch_size=MAX_BATCH + 1)


def test_a_snapshot_counts_every_registered_hosts_tasks_in_flight(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """In-flight lists are named from the workers hash and read in the same step as the
    queue, so `--exit-when-done` never sees a pipeline idle while a task is held."""
    pipe = Shard(any_redis, Keys(pipeline))
    pipe.heartbeat("h1", 10, {"processes": 2})
    pipe.heartbeat("h2", 10, {"processes": "garbage"})
    pipe.join("p", 30)
    pipe.push("p", 1, [b"a", b"b", b"c"], 3, "t", 30)
    pipe.take(pipe.keys.inflight("h1", 1), 2, block=None, host="h1")
    state = pipe.snapshot()
    assert (state.backlog, state.in_flight, state.idle) == (1, 2, False)
    assert [w.id for w in state.workers] == ["h1", "h2"]


class _Replies(Pipeline):
    """A pipeline whose commits answer what the test says."""

    reply = 1

    def commit(self, holding: str, taken: Taken, held: int, outcome: Outcome) -> int:
        super().commit(holding, taken, held, outcome)
        return self.reply


@pytest.mark.parametrize(("reply", "warned"), [(1, False), (2, False), (0, True)])
def test_a_child_warns_only_when_its_batch_was_taken_away(
    any_redis: redis.Redis,
    pipeline: str,
    caplog: pytest.LogCaptureFixture,
    reply: int,
    warned: bool,
) -> None:
    """A commit that had gone through before its reply was lost (2) is not "results
    dropped"; only a fenced commit (0) is."""
    c = child(any_redis, pipeline)
    c.pipe = _Replies(any_redis, pipeline)
    c.pipe.reply = reply
    with Producer(any_redis, pipeline) as p:
        p.submit("echo", 1)
    assert c.tick() == 1
    assert ("given back while they ran" in caplog.text) is warned


def test_dead_retry_takes_the_chosen_letters_as_reruns_of_the_run(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """``dead retry --id``: only that task goes back; its new answer says it is re-run 1 and
    the run's sink waits for it (it counts as submitted, and the re-run is a producer of the
    run); the other letters stay, in order. ``dead purge --reason`` drops by text."""
    pipe = Pipeline(any_redis, pipeline)
    with Producer(any_redis, pipeline) as p:
        p.map("boom", [1, 2])
        p.submit("add", 1, "x")  # wrong types: TypeError in the task
    assert run_until_idle(child(any_redis, pipeline)) == 3
    assert sink(any_redis, pipeline).run().failed == 3
    first = pipe.dead_letters()
    assert [d["id"] for d in first] == [f"{p.id}-1", f"{p.id}-2", f"{p.id}-3"]

    report = pipe.retry_dead(Selection(ids=frozenset({f"{p.id}-2"})))
    assert (report.retried, report.kept, report.submitted) == (1, 0, 1)
    assert [d["id"] for d in pipe.dead_letters()] == [f"{p.id}-1", f"{p.id}-3"]
    state = pipe.snapshot()
    assert state.run is not None and state.run.id == 2, "a re-run after the run ended is a run"
    assert state.submitted == 1 and state.stats[Stat.RERUNS] == 1 and state.closed
    assert run_until_idle(child(any_redis, pipeline)) == 1
    seen: list[dict[str, Any]] = []
    summary = sink(any_redis, pipeline, lambda r: seen.append(orjson.loads(r.raw))).run()
    assert summary.outcome == "complete" and summary.failed == 1
    assert [(r["id"], r["rerun"]) for r in seen] == [(f"{p.id}-2", 1)]

    assert pipe.purge_dead(Selection(reason="TypeError")) == 1
    assert [d["id"] for d in pipe.dead_letters()] == [f"{p.id}-1", f"{p.id}-2"]
    assert pipe.retry_dead(Selection(task="add")).retried == 0
    assert pipe.purge_dead() == 2 and pipe.dead_letters() == []


def test_a_producer_that_fails_aborts_its_part_and_the_run_ends_incomplete(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """An exception inside ``with Producer``: what it submitted still runs and is drained,
    but its part of the stream is aborted, not closed, and the run ends incomplete (it used to
    close as if the input had ended)."""
    with pytest.raises(RuntimeError), Producer(any_redis, pipeline) as p:
        p.map("echo", [1, 2])
        raise RuntimeError("input went away")
    (producer,) = Shard(any_redis, Keys(pipeline)).snapshot().producers
    assert (producer.state, producer.reason) == ("aborted", "RuntimeError: input went away")
    assert run_until_idle(child(any_redis, pipeline)) == 2
    summary = sink(any_redis, pipeline).run()
    assert summary.ok == 2 and summary.outcome == "incomplete" and not summary.complete
    assert [(s.id, s.state) for s in summary.short] == [(p.id, "aborted")]


def test_a_callers_answers_go_to_its_reply_list_and_go_with_it(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A task naming ``reply`` is answered in that caller's reply list, not ``results``; the
    caller takes and acknowledges it as the sink does; the workers' results bound leaves it
    out; a caller whose lease ran out is dropped with its answers."""
    pipe = Shard(any_redis, Keys(pipeline))
    assert pipe.call_renew("c1", 30, joining=True)
    single = orjson.dumps({"id": "c1-1", "task": "add", "args": [2, 3], "reply": "c1"})
    chunk = orjson.dumps(
        {"n": 2, "task": "echo", "producer": "c1", "first": 2, "args": [[7], [8]], "reply": "c1"}
    )
    pipe.call_push([single, chunk])
    assert run_until_idle(child(any_redis, pipeline)) == 3
    assert any_redis.llen(pipe.keys.results) == 0 and pipe.results_waiting() == 0
    taken = pipe.take_replies("c1", 10, None)
    lines = [line for raw in taken.held for line in parse_results(raw).lines]
    assert sorted(orjson.loads(line).get("value") for line in lines) == [5, 7, 8]
    assert pipe.ack_replies("c1", taken) == 1
    assert any_redis.llen(pipe.keys.replying("c1")) == 0

    assert pipe.call_renew("c2", 30, joining=True)
    pipe.call_push([orjson.dumps({"id": "c2-1", "task": "echo", "args": [1], "reply": "c2"})])
    assert run_until_idle(child(any_redis, pipeline)) == 1
    assert any_redis.llen(pipe.keys.replies("c2")) == 1
    assert pipe.call_renew("c2", 0.001)  # its last renewal: it stops here
    wait_for(lambda: pipe.expire_callers() == ["c2"], what="the caller's lease to run out")
    assert not any_redis.exists(pipe.keys.replies("c2")), "dropped with its answers"
    pipe.call_push([orjson.dumps({"id": "c2-2", "task": "echo", "args": [2], "reply": "c2"})])
    assert run_until_idle(child(any_redis, pipeline, index=1)) == 1
    assert not any_redis.exists(pipe.keys.replies("c2")), "a gone caller's task is not run"
    assert not pipe.call_renew("c2", 30), "a caller called gone learns it at its renewal"
    assert pipe.call_renew("c1", 30)


def test_a_caller_that_stalled_loses_nothing_and_its_rejected_tasks_answer_it(
    any_redis: redis.Redis, pipeline: str
) -> None:
    """A caller whose lease lapsed but that no reaper dropped yet (it stalled, or Redis was
    away) still gets its answers; and an element of its that cannot be read is answered in
    its reply list, not in results (where it would never see it and wait for ever)."""
    pipe = Shard(any_redis, Keys(pipeline))
    assert pipe.call_renew("c3", 0.001, joining=True)

    def lapsed() -> bool:
        now, _ = pipe.leases()
        return float(any_redis.zscore(pipe.keys.callers, "c3") or 0) < now

    wait_for(lapsed, what="its lease to lapse")
    pipe.call_push(
        [
            orjson.dumps({"id": "c3-1", "task": "echo", "args": [1], "reply": "c3"}),
            b'{"id":"c3-2","task":"echo","args":[1,, "reply":"c3"}',
        ]
    )
    assert run_until_idle(child(any_redis, pipeline)) == 2
    assert any_redis.llen(pipe.keys.results) == 0
    taken = pipe.take_replies("c3", 10, None)
    lines = [orjson.loads(line) for raw in taken.held for line in parse_results(raw).lines]
    assert sorted((a["id"], a["ok"]) for a in lines) == [("c3-1", True), ("c3-2", False)]
