"""A run's life through the CLI, against a real redis-server: a pipeline run twice, a trickling
stream, a stalled sink, a producer that stops short, closing and purging by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import redis

from tests.procs import ROOT, Host, env, feed, producing, read_results, redpool, wait_for
from tests.redis_server import RedisServer


def stats(client: redis.Redis, pipeline: str) -> dict[str, int]:
    raw: dict[bytes, bytes] = client.hgetall(f"redpool:{{{pipeline}}}:stats")  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


def status(url: str, pipeline: str) -> dict[str, Any]:
    done = redpool("status", "--redis", url, "--pipeline", pipeline, "--json")
    assert done.returncode == 0, done.stderr
    return dict(orjson.loads(done.stdout))


def ended(url: str, pipeline: str, run: int) -> bool:
    """Run ``run`` is the current one and marked complete."""
    now = status(url, pipeline)["run"] or {}
    return bool(now.get("id") == run and now.get("state") == "complete")


def sink(url: str, pipeline: str, out: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return redpool("sink", "--redis", url, "--pipeline", pipeline, "--output", str(out), *extra)


def test_a_pipeline_runs_twice_and_each_run_counts_from_zero(
    redis_server: RedisServer, pipeline: str, tmp_path: Path
) -> None:
    """What a second ``docker compose up`` does: the same pipeline, a second job. The second
    sink drains the second run (it used to exit at once with 0 results), its counters start
    at zero, and status shows the run before it."""
    url = redis_server.url
    host = Host(url, pipeline, log=tmp_path / "w.log")
    try:
        for run, values in ((1, [1, 2, 3]), (2, [10, 20])):
            lines = "".join(f"{v}\n" for v in values).encode()
            produced = redpool(
                "produce", "--redis", url, "--pipeline", pipeline, "--task", "echo", input=lines
            )
            assert produced.returncode == 0, produced.stderr
            out = tmp_path / f"run{run}.jsonl"
            done = sink(url, pipeline, out)
            n = len(values)
            assert done.returncode == 0, done.stderr
            assert f"run {run} complete: {n} result(s): {n} ok".encode() in done.stderr
            assert sorted(r["value"] for r in read_results(out)) == values
            now = status(url, pipeline)
            assert now["run"]["id"] == run and now["run"]["state"] == "complete"
            assert now["submitted"] == now["drained"] == n
        assert now["last_run"]["id"] == 1 and now["last_run"]["stats"]["submitted"] == 3
        assert now["last_run"]["state"] == "complete"
    finally:
        host.signal(signal.SIGTERM)
        assert host.wait() == 0


def test_a_sink_started_between_runs_waits_for_the_next_or_exits_when_told(
    redis_server: RedisServer, pipeline: str, tmp_path: Path
) -> None:
    url = redis_server.url
    done = sink(url, pipeline, tmp_path / "none.jsonl", "--exit-between-runs")
    assert done.returncode == 0 and b"no run in progress" in done.stderr, done.stderr
    waiting = subprocess.Popen(
        [
            *(sys.executable, "-P", "-m", "redpool", "sink", "--redis", url),
            *("--pipeline", pipeline, "--output", str(tmp_path / "next.jsonl")),
        ],
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env(),
    )
    host = Host(url, pipeline, "--exit-when-done", log=tmp_path / "w.log")
    produced = redpool(
        "produce", "--redis", url, "--pipeline", pipeline, "--task", "echo", input=b"7\n"
    )
    assert produced.returncode == 0
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and b"run 1 complete: 1 result(s)" in err, err
    assert host.wait() == 0


def test_a_trickling_stream_sends_its_first_tasks_within_the_linger(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str
) -> None:
    """One line, and the pipe stays open: it reaches Redis without waiting for 500 more
    lines or the end of the input (the default linger is 0.1 s)."""
    proc = producing(redis_server.url, pipeline, "--task", "echo")
    try:
        wait_for(
            lambda: bool(real_redis.hlen(f"redpool:{{{pipeline}}}:producers")),
            what="the producer to join",
        )
        feed(proc, ["1"])
        wait_for(
            lambda: stats(real_redis, pipeline).get("submitted") == 1,
            timeout=2,
            what="the first line to be pushed while the stream is still open",
        )
        feed(proc, ["2", "3"])
        wait_for(
            lambda: stats(real_redis, pipeline).get("submitted") == 3,
            timeout=5,
            what="the next lines",
        )
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        proc.kill()
    assert status(redis_server.url, pipeline)["stream"] == "closed"


def test_a_producer_stopped_by_a_signal_leaves_the_run_incomplete(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """SIGTERM mid-input (Ctrl-C is the same): the producer marks its part aborted, not
    closed; what it submitted still runs, and the sink says INCOMPLETE and exits 3 (it used to
    exit 0 as if the input had ended)."""
    url = redis_server.url
    proc = producing(url, pipeline, "--task", "echo")
    feed(proc, ["1", "2"])
    wait_for(lambda: stats(real_redis, pipeline).get("submitted") == 2, what="two tasks")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and b"interrupted" in err, err
    (producer,) = status(url, pipeline)["producers"]
    assert producer["state"] == "aborted" and producer["reason"] == "interrupted"
    host = Host(url, pipeline, "--exit-when-done", log=tmp_path / "w.log")
    out = tmp_path / "r.jsonl"
    done = sink(url, pipeline, out)
    assert done.returncode == 3, done.stderr
    assert b"run 1 INCOMPLETE (producer" in done.stderr and b"aborted: interrupted" in done.stderr
    assert sorted(r["value"] for r in read_results(out)) == [1, 2]
    assert host.wait() == 0
    assert status(url, pipeline)["run"]["state"] == "incomplete"


def test_workers_stop_taking_work_while_results_pile_up(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """No sink: the results list stays near --max-results instead of growing to the whole
    run; a sink that comes lets the rest through."""
    url = redis_server.url
    lines = "".join(f"[{i}, 0.005]\n" for i in range(600)).encode()
    common = ("--redis", url, "--pipeline", pipeline)
    produced = redpool("produce", *common, "--task", "slow_echo", "--chunksize", "1", input=lines)
    assert produced.returncode == 0
    host = Host(
        url,
        pipeline,
        "--exit-when-done",
        "--max-results",
        "20",
        log=tmp_path / "w.log",
        processes=1,
    )
    wait_for(lambda: "taking no new tasks" in host.output(), what="the child to stop taking")
    warning = next(line for line in host.output().splitlines() if "taking no new" in line)
    assert " WARNING redpool.workers: " in warning and warning[:4].isdigit()  # time, level
    held = stats(real_redis, pipeline)
    assert held["ok"] < 600 // 2, held
    assert status(url, pipeline)["backlog"] > 0
    out = tmp_path / "r.jsonl"
    done = sink(url, pipeline, out)
    assert done.returncode == 0 and b"600 result(s): 600 ok" in done.stderr, done.stderr
    assert host.wait() == 0


def test_close_by_hand_and_purge(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """``redpool close`` ends the part of a producer that will not come back (here one that
    is still reading its input); ``purge`` refuses while the run is not over, then deletes
    every key of the pipeline."""
    url = redis_server.url
    common = ("--redis", url, "--pipeline", pipeline)
    proc = producing(url, pipeline, "--task", "echo")
    try:
        feed(proc, ["5"])
        wait_for(lambda: stats(real_redis, pipeline).get("submitted") == 1, what="the task")
        refused = redpool("purge", *common)
        assert refused.returncode == 1 and b"run 1 not yet over" in refused.stderr
        (producer,) = status(url, pipeline)["producers"]
        unknown = redpool("close", *common, "--producer", "nobody")
        assert unknown.returncode == 1 and producer["id"].encode() in unknown.stderr
        closed = redpool("close", *common)
        assert (
            closed.returncode == 0 and f"closed producer {producer['id']}".encode() in closed.stderr
        )
        assert status(url, pipeline)["stream"] == "closed"
        feed(proc, ["6"])  # its next push is refused: it ends, saying so
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1 and b"closed" in err, err
    finally:
        proc.kill()
    host = Host(url, pipeline, "--exit-when-done", log=tmp_path / "w.log")
    done = sink(url, pipeline, tmp_path / "r.jsonl")
    assert done.returncode == 0 and b"1 result(s): 1 ok" in done.stderr, done.stderr
    assert host.wait() == 0
    purged = redpool("purge", *common)
    assert purged.returncode == 0, purged.stderr
    assert (
        list(
            real_redis.scan_iter(
                match=f"redpool:{{{pipeline}}}:*".replace("{", "\\{").replace("}", "\\}")
            )
        )
        == []
    )
    again = redpool("purge", *common)
    assert again.returncode == 1 and b"no pipeline" in again.stderr


def test_a_terminal_gets_a_live_progress_line_and_quiet_or_a_pipe_gets_none(
    redis_server: RedisServer, pipeline: str
) -> None:
    """stderr on a terminal (a pty here): the progress line is drawn; with --quiet, or when
    stderr is a pipe (every other test), only the summary."""

    def on_pty(*extra: str) -> str:
        main, other = os.openpty()
        try:
            done = subprocess.run(
                [
                    *(sys.executable, "-P", "-m", "redpool", "produce"),
                    *("--redis", redis_server.url, "--pipeline", pipeline, "--task", "echo"),
                    *extra,
                ],
                input=b"1\n2\n3\n",
                stdout=subprocess.DEVNULL,
                stderr=other,
                cwd=ROOT,
                env=env(),
                timeout=60,
            )
            assert done.returncode == 0
            os.close(other)
            drawn = b""
            while chunk := _read(main):
                drawn += chunk
            return drawn.decode(errors="replace")
        finally:
            os.close(main)

    drawn = on_pty()
    assert "run 1: 3 submitted" in drawn and "redpool: submitted 3 task(s)" in drawn, drawn
    quiet = on_pty("--quiet")
    assert "3 submitted" not in quiet and "redpool: submitted 3 task(s)" in quiet


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other end is closed and everything was read
        return b""


def test_a_following_sink_ends_each_run_and_drains_the_next(
    redis_server: RedisServer, pipeline: str, tmp_path: Path
) -> None:
    """``sink --follow`` marks each run ended as it drains it (a run it never ended stayed
    "running" for ever, and purge refused), then drains the next."""
    url = redis_server.url
    common = ("--redis", url, "--pipeline", pipeline)
    out = tmp_path / "r.jsonl"
    follower = subprocess.Popen(
        [sys.executable, "-P", "-m", "redpool", "sink", *common, "--output", str(out), "--follow"],
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env(),
    )
    host = Host(url, pipeline, log=tmp_path / "w.log")
    try:
        for run, lines in ((1, b"1\n2\n"), (2, b"3\n")):
            assert redpool("produce", *common, "--task", "echo", input=lines).returncode == 0
            wait_for(partial(ended, url, pipeline, run), what=f"run {run} marked complete")
        assert sorted(r["value"] for r in read_results(out)) == [1, 2, 3]
    finally:
        follower.send_signal(signal.SIGTERM)
        _, err = follower.communicate(timeout=30)
        host.signal(signal.SIGTERM)
        host.wait()
    assert follower.returncode == 0 and b"stopped following: 3 result(s)" in err, err


def test_a_producer_quiet_for_longer_than_its_lease_stays_open(
    redis_server: RedisServer, pipeline: str
) -> None:
    """Its thread renews the lease: past the first expiry, on the Redis clock, no reaper
    can call it abandoned, and it still pushes."""
    from redpool.keys import ABANDONED, Keys
    from redpool.producer import Producer, ProducerSettings
    from redpool.shard import Shard

    client = redis_server.client()
    pipe = Shard(client, Keys(pipeline))
    with Producer(client, pipeline, ProducerSettings(lease=3)) as producer:
        key = pipe.keys.producer_leases
        first = float(client.zscore(key, producer.id) or 0)

        def past_first_lease() -> bool:
            seconds, micros = client.time()
            return bool(seconds * 1000 + micros // 1000 > first + 500)

        wait_for(past_first_lease, timeout=10, what="the Redis clock to pass the first lease")
        # what a reaper does to a lapsed producer, refused: the lease was renewed
        assert not pipe.leave(producer.id, ABANDONED, only_if_expired=True)
        assert producer.map("echo", [1]) == 1
    assert pipe.snapshot().producers[0].state == "closed"
