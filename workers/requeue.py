"""Give back the tasks a dead child or a dead host held: once, even when reapers race.

The read-modify-write runs under WATCH on the inflight list: if another reaper (or the
holder's own commit) changes it between our read and our write, the transaction is dropped
and we read again, so every held task goes back exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

import redis
from redis.client import Pipeline

from redpool.envelope import (
    error,
    failure,
    parse_task,
    rejection,
    with_attempts,
)
from redpool.errors import PayloadError
from redpool.keys import Keys
from redpool.registry import CRASH_ATTEMPTS, Registry

log = logging.getLogger("redpool.workers")

ALL = -1
"""``charge`` value: every held task ran (as far as anyone knows) when its host died."""


@dataclass(frozen=True)
class Loss:
    """Why the tasks are coming back, and which of them to charge a failed attempt."""

    reason: str
    error_type: str = "WorkerLost"
    charge: int | None = None
    """Position of the task that was running (charged an attempt), ALL, or None for none."""


def return_tasks(
    client: redis.Redis, keys: Keys, inflight: str, loss: Loss, registry: Registry, worker: str
) -> int:
    """Move ``inflight`` back to the head of the tasks list; returns how many moved."""

    def move(pipe: Pipeline) -> tuple[int, int]:
        held = cast(list[bytes], pipe.lrange(inflight, 0, -1))
        back, results, dead = _sort(held, loss, registry, worker)
        pipe.multi()
        if not held:
            return 0, 0  # an empty transaction: nothing to give back
        pipe.delete(inflight)
        if back:
            pipe.lpush(keys.tasks, *reversed(back))
            pipe.hincrby(keys.stats, "requeued", len(back))
        if results:
            pipe.rpush(keys.results, *results)
            pipe.hincrby(keys.stats, "failed", len(results))
        if dead:
            pipe.rpush(keys.dead, *dead)
        return len(held), len(dead)

    # redis-py types the callable as returning None even with value_from_callable=True
    outcome = client.transaction(move, inflight, value_from_callable=True)  # type: ignore[arg-type]
    moved, dead = cast(tuple[int, int], outcome)
    if dead:
        log.warning("%d task(s) dead after: %s", dead, loss.reason)
    return int(moved)


def _sort(
    held: list[bytes], loss: Loss, registry: Registry, worker: str
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Split held payloads into (back to the queue, error results, dead letters)."""
    back: list[bytes] = []
    results: list[bytes] = []
    dead: list[bytes] = []
    for position, raw in enumerate(held):
        if loss.charge not in (ALL, position):
            back.append(raw)
            continue
        try:
            env = parse_task(raw)
        except PayloadError as exc:
            # Garbage that was running when the process died: nothing to retry.
            result, letter = rejection(raw, exc.reason, worker)
            if result is not None:
                results.append(result)
            dead.append(letter)
            continue
        task = registry.get(env.task)
        limit = task.max_crash_attempts if task else CRASH_ATTEMPTS
        attempts = env.attempts + 1
        if attempts < limit:
            back.append(with_attempts(raw, attempts))
            continue
        err = error(loss.error_type, loss.reason)
        reason = f"failed after {attempts} attempts: {loss.reason}"
        result, letter = failure(env, err, reason, attempts, worker)
        results.append(result)
        dead.append(letter)
    return back, results, dead
