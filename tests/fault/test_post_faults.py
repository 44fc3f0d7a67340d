"""``redpool sink --post`` killed while its POSTs fail: at-least-once across the kill."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis

from tests.procs import assert_nothing_left, redpool, wait_for
from tests.receiver import (
    OK,
    assert_every_result_accepted,
    post_args,
    receiving,
    start_posting,
    submit,
)
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow


def test_sink_killed_mid_batch_resends_only_that_batch(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """A sink SIGKILLed while the receiver answers 503 to its batch (some of the batch
    accepted already, some in flight): a restarted sink delivers the rest. Every id is
    accepted at least once, and the only ids accepted twice are of the batch that was held
    (in ``sinking``) at the kill: what was acknowledged had all been accepted."""
    producer = submit(redis_server.url, pipeline, tmp_path, n=30)
    healthy = False

    def plan(number: int, _key: str) -> str:
        # the first batch (8 results) is accepted and acknowledged, then 4 of the second
        return OK if healthy or number <= 12 else "503"

    sinking = f"redpool:{{{pipeline}}}:sinking"
    with receiving(plan) as receiver:
        sink = start_posting(redis_server.url, pipeline, receiver, tmp_path / "sink.err")
        wait_for(lambda: receiver.count(503) >= 10, what="POSTs failing")
        sink.kill()
        sink.wait()
        held = {orjson.loads(raw)["id"] for raw in real_redis.lrange(sinking, 0, -1)}
        assert held, "the batch in flight was acknowledged before it was accepted"
        # Its lease would lapse in 10 s; dropping it is that, sooner.
        real_redis.delete(f"redpool:{{{pipeline}}}:sink")
        healthy = True
        again = redpool(*post_args(redis_server.url, pipeline, receiver, "--exit-between-runs"))
        assert again.returncode == 0, again.stderr
        assert b"complete" in again.stderr
        assert_every_result_accepted(receiver, producer, n=30)
        twice = {i for i, n in receiver.accepted_ids().items() if n > 1}
        assert twice and twice <= held, (twice, held)
    assert_nothing_left(real_redis, pipeline)
