"""The dead list's letters: read them, choose some, and send their tasks back for a re-run or
drop them.

Called through `redpool.pipeline.Pipeline`, which adds the retry policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.client import Pipeline as Transaction

from redpool import codec
from redpool.envelope import as_rerun, parse_task
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
class Selection:
    """Which dead letters a ``dead retry`` or ``dead purge`` takes: those that match every
    criterion given (all of them when none is)."""

    ids: frozenset[str] = frozenset()
    task: str | None = None
    reason: str | None = None
    """Text found in the letter's reason or its error's type or message."""

    def __call__(self, letter: dict[str, Any]) -> bool:
        if self.ids and letter.get("id") not in self.ids:
            return False
        if self.task is not None and letter.get("task") != self.task:
            return False
        if self.reason is not None:
            err = letter.get("error")
            said = [letter.get("reason")]
            if isinstance(err, dict):
                said += [err.get("type"), err.get("message")]
            return any(isinstance(t, str) and self.reason in t for t in said)
        return True


EVERY = Selection()


@dataclass(frozen=True)
class RetryReport:
    retried: int
    kept: int
    """Selected dead letters that hold no runnable task (garbage payloads); they stay."""
    submitted: int = 0
    """Of ``retried``, tasks a producer submitted: the run's sink waits for their results."""


def retry(
    client: redis.Redis, keys: Keys, chosen: Selection = EVERY, producer: str | None = None
) -> RetryReport:
    """The chosen dead tasks go back to the tasks list as re-runs: a fresh attempt count and
    ``"rerun"`` one more than before, which their new answer carries (see
    `redpool.answers.Answers`), so a reader tells the re-run's result from the first one.

    Tasks a producer submitted count as submitted again (and as re-runs), and name
    ``producer`` (the re-run, a producer of the run) instead of the one of their first run,
    so the run's sink waits for their new results and counts them. Runs under WATCH
    (redis-py's transaction() retries it) so dead letters written meanwhile are neither lost
    nor sent twice.
    """

    def move(pipe: Transaction) -> RetryReport:
        letters = cast(list[bytes], pipe.lrange(keys.dead, 0, -1))
        again, stay, kept, submitted = _sort(letters, chosen, producer)
        pipe.multi()
        pipe.ltrim(keys.dead, len(letters), -1)
        if stay:  # back in front of any written meanwhile, in their order
            pipe.lpush(keys.dead, *reversed(stay))
        if again:
            pipe.rpush(keys.tasks, *again)
            pipe.hincrby(keys.stats, Stat.RERUNS, len(again))
        if submitted:
            pipe.hincrby(keys.stats, Stat.SUBMITTED, submitted)
        return RetryReport(len(again), kept, submitted)

    # redis-py types the callable as returning None even with value_from_callable=True
    report = client.transaction(move, keys.dead, value_from_callable=True)  # type: ignore[arg-type]
    return cast(RetryReport, report)


def purge(client: redis.Redis, keys: Keys, chosen: Selection = EVERY) -> int:
    """Drop the chosen dead letters there are now; returns how many. Under WATCH, so a letter
    written in between stays."""

    def drop(pipe: Transaction) -> int:
        letters = cast(list[bytes], pipe.lrange(keys.dead, 0, -1))
        stay = [letter for letter in letters if not chosen(parse(letter))]
        pipe.multi()
        pipe.ltrim(keys.dead, len(letters), -1)
        if stay:
            pipe.lpush(keys.dead, *reversed(stay))
        return len(letters) - len(stay)

    return cast(int, client.transaction(drop, keys.dead, value_from_callable=True))  # type: ignore[arg-type]


def matching(client: redis.Redis, keys: Keys, chosen: Selection) -> int:
    """How many dead letters the selection takes now."""
    letters = cast(list[bytes], client.lrange(keys.dead, 0, -1))
    return sum(1 for letter in letters if chosen(parse(letter)))


def _sort(
    letters: list[bytes], chosen: Selection, producer: str | None
) -> tuple[list[bytes], list[bytes], int, int]:
    """(re-runs to push, letters that stay, how many chosen were unrunnable, submitted)."""
    again: list[bytes] = []
    stay: list[bytes] = []
    kept = submitted = 0
    for letter in letters:
        body = parse(letter)
        if not chosen(body):
            stay.append(letter)
            continue
        try:
            env = parse_task(str(body["payload"]).encode())
            again.append(as_rerun(env.raw, producer))
        except (KeyError, TypeError, PayloadError):  # NotJSON is a TypeError
            stay.append(letter)
            kept += 1
            continue
        submitted += env.producer is not None
    return again, stay, kept, submitted
