"""What happens to the tasks a dead child or a dead host held when they are given back.

`Pipeline.give_back` moves them under WATCH; this module decides, task by task, which go back
to the queue as they were, which were charged a failed attempt (the one a dead child was
running, or every one of a dead host's), and which used their last attempt and are answered
and dead. A chunk goes back as a chunk, its charged tasks with their count raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redpool.answers import Answers, encode_dead, error, rejection
from redpool.codec import NotJSON
from redpool.envelope import (
    ItemError,
    Unit,
    parse_unit,
    read_item,
    rebuild,
    reply_of,
    shown,
    tasks_in,
)
from redpool.errors import PayloadError
from redpool.pipeline import Returned, Sort
from redpool.registry import CRASH_ATTEMPTS, Registry

ALL = -1
"""``charge`` value: every held task ran (as far as anyone knows) when its host died."""


@dataclass(frozen=True)
class Loss:
    """Why the tasks are coming back, and which of them to charge a failed attempt."""

    reason: str
    error_type: str = "WorkerLost"
    charge: int | None = None
    """Position (in tasks, across the batch) of the task that was running, ALL, or None."""
    final: bool = False
    """The charged tasks are dead now, whatever attempts they have left: what failed would
    fail again (Redis refused the commit of their answers)."""


def sorter(loss: Loss, registry: Registry, worker: str) -> Sort:
    """The ``sort`` argument of `Pipeline.give_back` for this loss."""

    def sort(held: list[bytes]) -> Returned:
        out = Returned()
        position = 0
        for raw in held:
            count = tasks_in(raw)
            if loss.charge == ALL:
                _guarded(raw, range(count), loss, registry, worker, out)
            elif loss.charge is not None and position <= loss.charge < position + count:
                _guarded(raw, [loss.charge - position], loss, registry, worker, out)
            else:
                out.back.append(raw)
            position += count
        return out

    return sort


def _guarded(
    raw: bytes, which: Any, loss: Loss, registry: Registry, worker: str, out: Returned
) -> None:
    """`_charge`, but an element whose charging raises is dead with an error answer for each
    of its ids: a supervisor, or every reaper after it, that died on it would meet it again
    on each restart (the give-back is not written, so the element stays where it was)."""
    back, results, dead = len(out.back), len(out.results), len(out.dead)
    try:
        _charge(raw, which, loss, registry, worker, out)
    except Exception as exc:  # noqa: BLE001 - whatever it is, it must not kill a reaper
        del out.back[back:], out.results[results:], out.dead[dead:]
        reason = f"could not be given back: {type(exc).__name__}: {exc}"
        rejected = rejection(raw, reason, worker)
        out.results.extend(rejected.results)
        out.dead.append(rejected.letter)


def _charge(
    raw: bytes, which: Any, loss: Loss, registry: Registry, worker: str, out: Returned
) -> None:
    """One failed attempt for the tasks at ``which`` (indexes in this element)."""
    try:
        unit = parse_unit(raw)
    except PayloadError as exc:  # garbage that was running: nothing to retry
        rejected = rejection(raw, exc.reason, worker)
        out.results.extend(rejected.results)
        out.dead.append(rejected.letter)
        return
    task = registry.get(unit.task)
    limit = task.max_crash_attempts if task else CRASH_ATTEMPTS
    err = error(loss.error_type, loss.reason)
    charged = set(which)
    kept: list[list[Any]] = []
    answers = Answers(unit.task, unit.producer, worker)
    for index, item in enumerate(unit.listed()):
        try:
            task_id, args, kwargs, attempts = read_item(item)
        except ItemError as exc:
            out.dead.append(
                encode_dead(shown(item), exc.reason, task_id=exc.task_id, worker=worker)
            )
            if exc.task_id is not None:
                answers.error(exc.task_id, error("PayloadError", exc.reason), 0.0, 0)
            continue
        attempts += index in charged
        if index not in charged or (attempts < limit and not loss.final):
            kept.append([task_id, args, kwargs, attempts])
            continue
        reason = loss.reason if loss.final else f"failed after {attempts} attempts: {loss.reason}"
        out.dead.append(answers.dead(unit, item, err, reason, attempts))
    _keep(unit, kept, worker, out)
    if answers.lines:
        reply = reply_of(unit.body)
        if reply is not None:  # a caller waits for these (Pool)
            out.replies.setdefault(reply, []).append(answers.element(unit.single))
        else:
            out.results.append(answers.element(unit.single))


def _keep(unit: Unit, kept: list[list[Any]], worker: str, out: Returned) -> None:
    if not kept:
        return
    try:
        out.back.append(rebuild(unit, kept))
    except NotJSON as exc:  # parses, yet cannot be written again (nesting too deep)
        reason = f"cannot be written back for another attempt: {exc}"
        rejected = rejection(unit.raw, reason, worker)
        out.results.extend(rejected.results)
        out.dead.append(rejected.letter)
