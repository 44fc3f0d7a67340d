"""The dead list's letters: read them, and send their tasks back for another run.

Called through `redpool.pipeline.Pipeline`, which adds the retry policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.client import Pipeline as Transaction

from redpool import codec
from redpool.envelope import parse_task, with_attempts
from redpool.errors import PayloadError
from redpool.keys import Keys, Stat


def parse(item: bytes) -> dict[str, Any]:
    """A dead letter as a dict; one that is not a JSON object is shown as its payload."""
    try:
        body = codec.loads(item)
    except codec.JSONDecodeError:
        return {"reason": "unreadable dead letter", "payload": item.decode("utf-8", "replace")}
    return body if isinstance(body, dict) else {"payload": body}


@dataclass(frozen=True)
class RetryReport:
    retried: int
    kept: int
    """Dead letters that hold no runnable task (garbage payloads); they stay in the list."""


def retry_all(client: redis.Redis, keys: Keys) -> RetryReport:
    """Every dead task goes back to the tasks list with a fresh attempt count.

    Submitted tasks count as submitted again, so a running sink waits for their new results.
    Runs under WATCH (redis-py's transaction() retries it) so dead letters written meanwhile
    are neither lost nor sent twice.
    """

    def move(pipe: Transaction) -> RetryReport:
        letters = cast(list[bytes], pipe.lrange(keys.dead, 0, -1))
        again, kept, submitted = _sort(letters)
        pipe.multi()
        pipe.ltrim(keys.dead, len(letters), -1)
        if again:
            pipe.rpush(keys.tasks, *again)
        if kept:
            pipe.rpush(keys.dead, *kept)
        if submitted:
            pipe.hincrby(keys.stats, Stat.SUBMITTED, submitted)
        return RetryReport(len(again), len(kept))

    # redis-py types the callable as returning None even with value_from_callable=True
    report = client.transaction(move, keys.dead, value_from_callable=True)  # type: ignore[arg-type]
    return cast(RetryReport, report)


def _sort(letters: list[bytes]) -> tuple[list[bytes], list[bytes], int]:
    again: list[bytes] = []
    kept: list[bytes] = []
    submitted = 0
    for letter in letters:
        try:
            env = parse_task(str(parse(letter)["payload"]).encode())
            again.append(with_attempts(env.raw, 0))
        except (KeyError, TypeError, PayloadError):  # NotJSON is a TypeError
            kept.append(letter)
            continue
        submitted += env.producer is not None
    return again, kept, submitted
