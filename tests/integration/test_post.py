"""``redpool sink --post URL``: every result POSTed, at least once, to a receiver that fails
now and then; acknowledged in Redis only after a 2xx."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from tests.procs import assert_nothing_left, error_line, redpool, wait_for
from tests.receiver import (
    OK,
    RESET,
    SLOW,
    assert_every_result_accepted,
    post_args,
    receiving,
    start_posting,
    submit,
)
from tests.redis_server import RedisServer


def test_every_result_posted_through_failures(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """Every 3rd POST answered 503, one 429 with Retry-After, one connection reset and one
    answer later than the sender's timeout: each result still gets a 2xx, its body is the
    result line with its id as Idempotency-Key, the sink exits 0 with the run complete, and
    nothing is left in Redis."""
    producer = submit(redis_server.url, pipeline, tmp_path)
    faults = {2: "429 1", 4: RESET, 5: SLOW}

    def plan(number: int, _key: str) -> str:
        return faults.get(number, "503" if number % 3 == 0 else OK)

    with receiving(plan) as receiver:
        sunk = redpool(*post_args(redis_server.url, pipeline, receiver, "--concurrency", "4"))
        assert sunk.returncode == 0, sunk.stderr
        assert b"complete: 40 result(s): 40 ok, 0 failed" in sunk.stderr
        assert_every_result_accepted(receiver, producer)
        first, *later = [r for r in receiver.received if r.key == receiver.received[1].key]
        assert later and later[0].at - first.at >= 0.9, "Retry-After: 1 was not waited out"
    assert_nothing_left(real_redis, pipeline)


def test_refused_result_stops_the_sink_and_stays_in_redis(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """A receiver that answers 400 to one result: after a few tries the sink stops with one
    line and exit 1, the result's batch unacknowledged; once the receiver takes it, a new
    sink delivers everything."""
    producer = submit(redis_server.url, pipeline, tmp_path, n=10)
    refused = f"{producer}-7"
    fixed = False

    def plan(_number: int, key: str) -> str:
        return "400" if key == refused and not fixed else OK

    with receiving(plan) as receiver:
        sunk = redpool(*post_args(redis_server.url, pipeline, receiver))
        err = sunk.stderr.decode()  # the retries' warnings, then the one error line
        assert sunk.returncode == 1 and "Traceback" not in err, err
        line = err.splitlines()[-1]
        assert line.startswith("redpool: error: ") and line.endswith("for the next sink"), line
        assert f"refused result {refused} 3 time(s) (400 Bad Request)" in line, line
        assert refused not in receiver.accepted_ids()
        sinking = real_redis.lrange(f"redpool:{{{pipeline}}}:sinking", 0, -1)
        assert any(refused.encode() in raw for raw in sinking)
        fixed = True
        again = redpool(*post_args(redis_server.url, pipeline, receiver))
        assert again.returncode == 0, again.stderr
        assert_every_result_accepted(receiver, producer, n=10)
    assert_nothing_left(real_redis, pipeline)


def test_sigterm_leaves_unsent_results_unacknowledged(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """SIGTERM while the receiver answers 503: the POSTs in flight finish, the sink exits 3
    (stopped before the run was done) without acknowledging the batch, and a next sink
    delivers every result."""
    producer = submit(redis_server.url, pipeline, tmp_path, n=10)
    healthy = False

    def plan(number: int, _key: str) -> str:
        return OK if healthy or number <= 3 else "503"

    with receiving(plan) as receiver:
        sink = start_posting(redis_server.url, pipeline, receiver, tmp_path / "sink.err")
        wait_for(lambda: receiver.count(503) >= 5, what="POSTs failing")
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(timeout=30) == 3
        assert b"stopped before run" in (tmp_path / "sink.err").read_bytes()
        assert real_redis.llen(f"redpool:{{{pipeline}}}:sinking") > 0
        healthy = True
        again = redpool(*post_args(redis_server.url, pipeline, receiver))
        assert again.returncode == 0, again.stderr
        assert_every_result_accepted(receiver, producer, n=10)
    assert_nothing_left(real_redis, pipeline)


def test_bad_post_url_is_a_usage_error(redis_server: RedisServer, pipeline: str) -> None:
    """A URL that is not http(s) is one line and exit 2, before Redis is touched."""
    done = redpool("sink", "--redis", redis_server.url, "--pipeline", pipeline, "--post", "ftp://x")
    line = error_line(done, 2)
    assert line == (
        "redpool: error: invalid value for --post: must be an http:// or https:// URL with a "
        "host, not 'ftp://x'"
    )
