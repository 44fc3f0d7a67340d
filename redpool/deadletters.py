"""The dead list: read it, send its tasks back for another run, or drop it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.client import Pipeline

from redpool import codec
from redpool.envelope import parse_task, with_attempts
from redpool.errors import PayloadError
from redpool.keys import Keys


def list_dead(client: redis.Redis, keys: Keys, limit: int = 20) -> list[dict[str, Any]]:
    """The oldest ``limit`` dead letters (all when ``limit`` is 0)."""
    raw = cast(list[bytes], client.lrange(keys.dead, 0, limit - 1 if limit else -1))
    out = []
    for item in raw:
        try:
            body = codec.loads(item)
        except codec.JSONDecodeError:
            body = {"reason": "unreadable dead letter", "payload": item.decode("utf-8", "replace")}
        out.append(body if isinstance(body, dict) else {"payload": body})
    return out


@dataclass(frozen=True)
class RetryReport:
    retried: int
    kept: int
    """Dead letters that hold no runnable task (garbage payloads); they stay in the list."""


def retry_dead(client: redis.Redis, keys: Keys) -> RetryReport:
    """Every dead task goes back to the tasks list with a fresh attempt count.

    Submitted tasks count as submitted again, so a running sink waits for their new results.
    Runs under WATCH (redis-py's transaction() retries it) so dead letters written meanwhile
    are neither lost nor sent twice.
    """

    def move(pipe: Pipeline) -> RetryReport:
        letters = cast(list[bytes], pipe.lrange(keys.dead, 0, -1))
        again, kept, submitted = _sort(letters)
        pipe.multi()
        pipe.ltrim(keys.dead, len(letters), -1)
        if again:
            pipe.rpush(keys.tasks, *again)
        if kept:
            pipe.rpush(keys.dead, *kept)
        if submitted:
            pipe.hincrby(keys.stats, "submitted", submitted)
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
            body = codec.loads(letter)
            env = parse_task(str(body["payload"]).encode())
        except (codec.JSONDecodeError, KeyError, TypeError, PayloadError):
            kept.append(letter)
            continue
        again.append(with_attempts(env.raw, 0))
        submitted += env.producer is not None
    return again, kept, submitted


def purge_dead(client: redis.Redis, keys: Keys) -> int:
    """Drop every dead letter; returns how many there were."""
    pipe = client.pipeline(transaction=True)
    pipe.llen(keys.dead)
    pipe.delete(keys.dead)
    count, _ = pipe.execute()
    return int(count)
