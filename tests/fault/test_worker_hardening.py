"""Worker hosts under the faults of issue 14: a stalled supervisor, a crashed supervisor, a
commit the server refuses, a child that keeps dying outside its tasks.

Each test proves the promise (every task ends with exactly one result, nothing left in
flight) where it used to break. Waits are on observable state with deadlines.
"""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from redpool.workers.crashes import CHARGE_AFTER
from tests.procs import ids_in, wait_for
from tests.redis_server import RedisServer
from tests.runs import Run

pytestmark = pytest.mark.slow


def gated(run: Run, tmp_path: Path) -> tuple[str, Path]:
    """Submit a task that blocks until a file exists, then wait until a child runs it."""
    release = tmp_path / "release"
    gate_id = run.submit("gate", "gated", str(release))
    wait_for((tmp_path / "release.running").exists, what="a child to run the gate task")
    return gate_id, release


def test_a_stalled_supervisors_children_take_nothing_after_its_reap(run: Run) -> None:
    """SIGSTOP a host's supervisor alone: its lease runs out, another host reaps it, and its
    children, still running, must take nothing more (the take is fenced on the lease); what
    they hold when the host is then killed is an orphan a reaper gives back."""
    stalled = run.host()
    run.start_sink()
    run.submit_many("slow_echo", [[i, 0.002] for i in range(3000)], chunksize=1)
    wait_for(lambda: int(run.client.hget(run.key("stats"), "ok") or 0) > 50, what="progress")
    (stalled_id,) = run.workers()
    stalled.proc.send_signal(signal.SIGSTOP)  # the supervisor only; its children run on
    run.host()
    wait_for(lambda: stalled_id not in run.workers(), timeout=30, what="the reap")

    def took_after_the_reap() -> bool:
        pattern = run.key(f"inflight:{stalled_id}:*").replace("{", "\\{").replace("}", "\\}")
        return any(True for _ in run.client.scan_iter(match=pattern))

    wait_for(
        lambda: stalled.output().count("lease ran out") == 2,
        what="both children of the stalled host to find their take fenced",
    )
    assert not took_after_the_reap(), "a child of a reaped host took tasks"
    stalled.kill_host()
    run.finish(timeout=60)


def test_a_supervisor_error_stops_the_host_and_gives_its_tasks_back(
    run: Run, tmp_path: Path
) -> None:
    """An error the supervisor cannot go on after (here Redis refusing its promote: the
    delayed key is not a zset) stops the children, gives their tasks back, deregisters and
    exits 1 with one line, rather than leave a zombie whose children run on."""
    host = run.host()
    run.start_sink()
    gate_id, release = gated(run, tmp_path)
    run.client.set(run.key("delayed"), "not a sorted set")
    assert host.wait(timeout=30) == 1, host.output()
    errors = [line for line in host.output().splitlines() if "error" in line.lower()]
    assert "Traceback" not in host.output() and len(errors) == 1, host.output()
    assert "WRONGTYPE" in errors[0] and errors[0].startswith("redpool: error:")
    assert host.children() == [] and run.workers() == {}
    queued = run.client.lrange(run.key("tasks"), 0, -1)
    assert [task_id for raw in queued for task_id in ids_in(raw)] == [gate_id]
    run.client.delete(run.key("delayed"))
    run.host()
    release.touch()
    results = {str(r["id"]): r for r in run.finish()}
    assert results[gate_id]["ok"] is True and "attempts" not in results[gate_id]


def test_a_stop_request_while_redis_is_away_ends_in_bounded_time(run: Run, tmp_path: Path) -> None:
    """SIGTERM with Redis gone: the host gives up once Redis has been away longer than its
    lease and exits 1, still registered; once Redis is back, another host reaps it."""
    host = run.host()
    run.start_sink()
    gate_id, release = gated(run, tmp_path)
    run.server.stop()
    host.signal(signal.SIGTERM)
    assert host.wait(timeout=30) == 1, host.output()
    assert "stays registered" in host.output()
    run.server.start()
    (stopped_id,) = run.workers()
    run.host()
    wait_for(lambda: stopped_id not in run.workers(), timeout=30, what="the reap")
    release.touch()
    results = {str(r["id"]): r for r in run.finish()}
    assert results[gate_id]["ok"] is True and results[gate_id]["attempts"] == 1


def test_a_commit_the_server_refuses_dead_letters_the_batch(tmp_path: Path) -> None:
    """An answer over the server's proto-max-bulk-len: Redis drops the connection on that
    commit every time. The batch is dead, answered with why; no child loops or dies on it,
    and the tasks after it run."""
    server = RedisServer(tmp_path / "redis", extra=("--proto-max-bulk-len", "1mb")).start()
    run = Run(server, tmp_path)
    try:
        host = run.host()
        run.start_sink()
        big_id = run.submit("big", 2_000_000)
        run.submit_many("echo", [[i] for i in range(100)])
        results = {str(r["id"]): r for r in run.finish(timeout=60)}
        assert results[big_id]["ok"] is False
        assert results[big_id]["error"]["type"] == "RedisRefused"
        assert "dropped the connection" in results[big_id]["error"]["message"]
        (letter,) = [orjson.loads(x) for x in run.client.lrange(run.key("dead"), 0, -1)]
        assert letter["id"] == big_id and "refused" in letter["reason"]
        assert "died" not in host.output()
    finally:
        run.clean_up()
        server.kill()


def test_a_child_that_keeps_dying_outside_its_tasks_is_slowed_then_charged(run: Run) -> None:
    """A child that dies at its commit, every time, for the same batch: replaced with
    backoff, not in a hot loop, and after repeated deaths the batch's task is charged until
    it is dead, answered with WorkerLost; the tasks after it run."""
    host = run.host(processes=1)
    run.start_sink()
    broken = run.submit("break_commit", 1)
    run.submit_many("echo", [[i] for i in range(100)])
    results = {str(r["id"]): r for r in run.finish(timeout=60)}
    assert results[broken]["ok"] is False and results[broken]["attempts"] == 3
    assert results[broken]["error"]["type"] == "WorkerLost"
    assert "outside its tasks" in results[broken]["error"]["message"]
    deaths = host.output().count("died (exit code 7); replacing it")
    assert deaths == CHARGE_AFTER - 1 + 3, host.output()  # uncharged, then one per attempt
