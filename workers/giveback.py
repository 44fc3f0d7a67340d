"""What happens to the tasks a dead child or a dead host held when they are given back.

`Pipeline.give_back` moves them under WATCH; this module decides, task by task, which go back
to the queue and which were charged their last attempt and are answered and dead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redpool.codec import NotJSON
from redpool.envelope import error, failure, parse_task, rejection, with_attempts
from redpool.errors import PayloadError
from redpool.pipeline import Returned
from redpool.registry import CRASH_ATTEMPTS, Registry

ALL = -1
"""``charge`` value: every held task ran (as far as anyone knows) when its host died."""


@dataclass(frozen=True)
class Loss:
    """Why the tasks are coming back, and which of them to charge a failed attempt."""

    reason: str
    error_type: str = "WorkerLost"
    charge: int | None = None
    """Position of the task that was running (charged an attempt), ALL, or None for none."""


def sorter(loss: Loss, registry: Registry, worker: str) -> Callable[[list[bytes]], Returned]:
    """The ``sort`` argument of `Pipeline.give_back` for this loss."""

    def sort(held: list[bytes]) -> Returned:
        out = Returned([], [], [])
        for position, raw in enumerate(held):
            if loss.charge in (ALL, position):
                _charge(raw, loss, registry, worker, out)
            else:
                out.back.append(raw)
        return out

    return sort


def _charge(raw: bytes, loss: Loss, registry: Registry, worker: str, out: Returned) -> None:
    """One failed attempt for a task that was running: back with its count, or dead."""
    try:
        env = parse_task(raw)
    except PayloadError as exc:
        _reject(raw, exc.reason, worker, out)  # garbage that was running: nothing to retry
        return
    task = registry.get(env.task)
    limit = task.max_crash_attempts if task else CRASH_ATTEMPTS
    attempts = env.attempts + 1
    if attempts < limit:
        try:
            out.back.append(with_attempts(raw, attempts))
            return
        except NotJSON as exc:
            _reject(raw, f"cannot be written back for another attempt: {exc}", worker, out)
            return
    err = error(loss.error_type, loss.reason)
    result, letter = failure(
        env, err, f"failed after {attempts} attempts: {loss.reason}", attempts, worker
    )
    out.results.append(result)
    out.dead.append(letter)


def _reject(raw: bytes, reason: str, worker: str, out: Returned) -> None:
    result, letter = rejection(raw, reason, worker)
    if result is not None:
        out.results.append(result)
    out.dead.append(letter)
