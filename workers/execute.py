"""Run a batch of tasks and say what to write back. No Redis in here.

A batch is a few elements of the tasks list, each a single task, a run or a listed chunk (see
`redpool.envelope`). Every way a task can end is data in the outcome, never an exception out
of the loop: ok -> an answer; raised with attempts left -> a retry of that task alone, through
the delayed set; raised for the last time, timed out, bad arguments, unknown task, garbage ->
an error answer (when the task has an id, so the run still completes) and a dead letter about
that task alone. The answers of a chunk go back as one element of the results list.

The loop stops starting tasks when told to (a first SIGTERM), when the child has started as
many as it may (``--max-tasks-per-child``), or when the supervisor cut the batch to hand the
rest to other processes; the outcome then says where it stopped.
"""

from __future__ import annotations

import gc
import logging
import math
import time
import traceback
from collections.abc import Callable
from time import monotonic
from types import FrameType
from typing import Any

from redpool import codec
from redpool.answers import Answers, Outcome, encode_dead, error, rejection, reply_in, route
from redpool.codec import NotJSON
from redpool.envelope import (
    MAX_PAYLOAD,
    ItemError,
    Unit,
    encode_task,
    parse_unit,
    read_item,
    rebuild,
    refused,
    refused_since,
    reply_of,
    rerun_of,
    shown,
    tasks_in,
    with_reply,
)
from redpool.errors import PayloadError, TaskTimeout
from redpool.registry import Registry, Task
from redpool.workers import slots
from redpool.workers.slots import CUT, DEADLINE, POSITION, STARTED, Slot

log = logging.getLogger("redpool.workers")
_OURS = frozenset({__file__, slots.__file__})
_NO_LIMIT = 2**62
UNKNOWN_DELAY = 1.0
"""Seconds such an element waits in the delayed set each time it is given back."""


def _answered(unit: Unit, answers: Answers, out: Outcome) -> None:
    """An element's answers into the outcome, to its caller or to the results list."""
    route([answers.element(unit.single)], reply_of(unit.body), out)
    out.ok += answers.ok
    out.failed += answers.failed


class Executor:
    def __init__(
        self,
        registry: Registry,
        worker: str,
        slot: Slot,
        default_timeout: float | None = None,
        max_payload: int = MAX_PAYLOAD,
        budget: float = 0.05,
        unknown_wait: float = 300.0,
        tracebacks: bool = True,
    ) -> None:
        self.registry = registry
        self.tracebacks = tracebacks
        """An error result carries the task's traceback (with file paths: see the README)."""
        self.worker = worker
        self.slot = slot
        self.default_timeout = default_timeout
        self.max_payload = max_payload
        self.budget = budget
        """Seconds of work a batch is meant to hold (`WorkerSettings.batch_seconds`)."""
        self.callers: Callable[[str], bool] | None = None
        """Whether a caller is still there (None: do not ask; all are)."""
        self.unknown_wait = unknown_wait
        """Seconds an element whose task this worker lacks goes back for another host."""
        self.pace: dict[str, float] = {}
        """Task name -> seconds per task, as this child measured it."""
        self.stop = False
        """Set from the child's SIGTERM handler: finish the running task, start no other."""

    def on_alarm(self, _signum: int, frame: FrameType | None) -> None:
        """SIGALRM handler: the supervisor's word that the running task is over its time.

        The one signal handler that raises: a timeout has to interrupt the task's own code. It
        raises only while a task runs past its deadline and only in a frame that is not ours,
        so a task that finished just as the signal came is not charged and our bookkeeping is
        never interrupted half-way.
        """
        if self.slot.expired() and frame is not None and frame.f_code.co_filename not in _OURS:
            raise TaskTimeout

    def run_batch(self, held: list[bytes], budget: int | None = None) -> Outcome:
        """Run the tasks of ``held`` in order; start at most ``budget`` of them.

        Should handling an element raise (a payload that met a bug of ours: the task's own
        exceptions never leave the loop), the batch is run again from its start, each element
        on its own guard, and the one that raises is dead with an error answer for each of its
        ids: a child that died on it would take it again, and die again, for ever. Running the
        batch twice is the at-least-once a dead child would have given it, and the guard is
        not paid for on the path every task takes."""
        try:
            return self._run_batch(held, budget, self._run_element)
        except Exception as exc:  # noqa: BLE001 - whatever it is, it must not kill the child
            log.warning(
                "a batch raised %s: %s; running it again, element by element",
                type(exc).__name__,
                exc,
            )
            return self._run_batch(held, budget, self._run_guarded)

    def _run_batch(self, held: list[bytes], budget: int | None, step: _Step) -> Outcome:
        """The cyclic GC is off for the batch (about `batch_seconds` of work): a chunk's parsed
        tasks are thousands of young objects it would otherwise scan again and again; cycles
        a task leaves are collected when the batch is over."""
        out = Outcome()
        self.slot.begin(sum(tasks_in(raw) for raw in held))
        limit = _NO_LIMIT if budget is None else budget
        timing: dict[str, list[float]] = {}
        position = 0
        collecting = gc.isenabled()
        gc.disable()
        try:
            for raw in held:
                position = step(raw, position, limit, out, timing)
                if out.stopped_at is not None:
                    break
        finally:
            self.slot.finish()
            if collecting:
                gc.enable()
        for name, (spent, count) in timing.items():
            self.pace[name] = spent / count
        out.pace = {name: spent / count * 1e6 for name, (spent, count) in timing.items() if count}
        return out

    def _run_guarded(
        self, raw: bytes, position: int, limit: int, out: Outcome, timing: dict[str, list[float]]
    ) -> int:
        """`_run_element`, but an element whose handling raises is dead, as garbage is: what
        it had added to the outcome is taken out, and each of its ids gets an error answer."""
        results, dead, retries, ok, failed = (
            len(out.results),
            len(out.dead),
            len(out.retries),
            out.ok,
            out.failed,
        )
        try:
            return self._run_element(raw, position, limit, out, timing)
        except Exception as exc:  # noqa: BLE001 - see run_batch
            del out.results[results:], out.dead[dead:], out.retries[retries:]
            out.ok, out.failed, out.stopped_at = ok, failed, None
            reason = f"the worker failed on this element: {type(exc).__name__}: {exc}"
            rejected = rejection(raw, reason, self.worker)
            out.results.extend(rejected.results)
            out.failed += rejected.answered
            out.dead.append(rejected.letter)
            return position + tasks_in(raw)

    def _run_element(
        self, raw: bytes, position: int, limit: int, out: Outcome, timing: dict[str, list[float]]
    ) -> int:
        """Run one element's tasks from ``position``; returns the position after them."""
        if position >= limit or self.stop:
            out.stopped_at = position
            return position
        try:
            unit = parse_unit(raw, self.max_payload)
        except PayloadError as exc:
            return self._rejected(raw, exc.reason, position, out)
        if self._caller_gone(unit):
            if self._reach(position, out):
                out.dropped += unit.count  # nobody waits for these answers: not run
                position += unit.count
            return position
        if position and self._unknown(unit):
            out.stopped_at = position  # commit what ran before starting what may be slow
            return position
        rerun = rerun_of(unit.body) if unit.single else 0
        answers = Answers(unit.task, unit.producer, self.worker, rerun)
        task = self.registry.get(unit.task)
        if task is None:
            if self._later(unit, position, out):
                return position + unit.count
            position = self._unknown_task(unit, position, answers, out)
        else:
            returned = answers.ok
            run = self._run_run if unit.args is not None else self._run_listed
            spent, position = run(unit, task, position, limit, answers, out)
            if answers.ok > returned:
                total = timing.setdefault(unit.task, [0.0, 0])
                total[0] += spent
                total[1] += answers.ok - returned
        if answers.lines:
            _answered(unit, answers, out)
        return position

    def _unknown_task(self, unit: Unit, position: int, answers: Answers, out: Outcome) -> int:
        """Every task of an element whose name this worker lacks, dead (its wait is over)."""
        reason = f"unknown task {unit.task!r} (not registered with this worker)"
        if refused_since(unit) is not None:
            reason = (
                f"unknown task {unit.task!r} (no worker that took it in "
                f"{self.unknown_wait:g} s had it registered)"
            )
        for item in unit.listed():
            if not self._reach(position, out):
                break
            self._reject(unit, item, reason, answers, out)
            position += 1
        return position

    def _later(self, unit: Unit, position: int, out: Outcome) -> bool:
        """An element of a task this worker does not have, in a pipeline another host may
        serve (a rolling upgrade: the new name reaches the queue before every host has it):
        given back through the delayed set, not dead, until `unknown_wait` seconds after the
        first host refused it. Marked in the element itself, so every host counts from the
        same refusal; the delay keeps a host alone with it from taking it again at once.
        False when it is to be dead now: waited long enough, a cut inside it, or an element
        that cannot be written again."""
        now = int(time.time() * 1000)
        first = refused_since(unit)
        if not self.unknown_wait or (first is not None and now - first >= self.unknown_wait * 1000):
            return False
        if self.slot.start(position, monotonic(), None) < position + unit.count:
            return False  # part of it was handed to other processes: answer what is ours
        try:
            element = refused(unit, now)
        except NotJSON:
            return False
        out.later.append((int(UNKNOWN_DELAY * 1000), element))
        return True

    def _rejected(self, raw: bytes, reason: str, position: int, out: Outcome) -> int:
        """An element that is not tasks we can run: dead, answered under its ids."""
        if not self._reach(position, out):
            return position
        rejected = rejection(raw, reason, self.worker)
        route(rejected.results, reply_in(raw), out)
        out.failed += rejected.answered
        out.dead.append(rejected.letter)
        return position + tasks_in(raw)

    def _caller_gone(self, unit: Unit) -> bool:
        """The element names a caller (``reply``) that is gone: its lease ran out, or it
        left. Asked of `callers` (set by the child, from Redis), only for such elements."""
        reply = reply_of(unit.body)
        return reply is not None and self.callers is not None and not self.callers(reply)

    def _reach(self, position: int, out: Outcome) -> bool:
        """Task ``position`` is refused without running (garbage, an unknown task): like a
        start, published before the cut is read, so a task the supervisor hands back is not
        also answered here. False (and the outcome stops there) when it was handed back."""
        if self.slot.start(position, monotonic(), None) > position:
            return True
        out.stopped_at = position
        return False

    def _unknown(self, unit: Unit) -> bool:
        """A chunk this child has not timed yet, or expects to take longer than a batch
        should: the answers of the tasks run before it in the batch are written first (the
        batch stops here, the rest goes back to the head of the queue), so they do not wait
        behind it."""
        pace = self.pace.get(unit.task)
        return pace is None or pace * unit.count > self.budget

    def _run_run(
        self, unit: Unit, task: Task, position: int, limit: int, answers: Answers, out: Outcome
    ) -> tuple[float, int]:
        """The hot loop: the tasks of a run, once per task; (seconds the tasks that returned
        took, the position after the last one started).

        Written for speed, as nearly every task passes here: names bound to locals, the
        slot's stores inline, each task starting when the one before it ended (one clock read
        per task); anything out of the ordinary goes through a method.
        """
        timeout = task.timeout or self.default_timeout
        grace = timeout if timeout else math.inf  # deadline = start + grace
        fn, ran, first = task.fn, answers.ran, unit.first
        mem, at = self.slot.view()
        at_position, at_started, at_deadline, at_cut = (
            at + POSITION,
            at + STARTED,
            at + DEADLINE,
            at + CUT,
        )
        spent, start = 0.0, position
        began = monotonic()
        for index, args in enumerate(unit.args or ()):
            if (position >= limit or self.stop) and (position == start or _splits(unit)):
                out.stopped_at = position
                break
            # what Slot.start does: position, start and deadline out, then the cut in
            mem[at_position] = position
            mem[at_started] = began
            mem[at_deadline] = began + grace
            if mem[at_cut] <= position:
                out.stopped_at = position  # the rest was handed to other processes
                break
            if type(args) is not list:
                item = [f"{unit.producer}-{first + index}", args]
                self._reject(unit, item, "a task's args must be a JSON array", answers, out)
                position += 1
                continue
            out.started += 1
            try:
                value = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - a failing task is data, whatever it raised
                item = [f"{unit.producer}-{first + index}", args]
                self._failed(unit, task, item, exc, answers, out, began, timeout)
                position += 1
                began = monotonic()
                continue
            ended = monotonic()
            elapsed = ended - began
            spent += elapsed
            began = ended
            try:
                ran(first + index, value, elapsed * 1000)
            except NotJSON as exc:
                item = [f"{unit.producer}-{first + index}", args]
                self._not_json(unit, item, exc, elapsed, answers, out)
            position += 1
        return spent, position

    def _run_listed(
        self, unit: Unit, task: Task, position: int, limit: int, answers: Answers, out: Outcome
    ) -> tuple[float, int]:
        """The tasks of a single task or a listed chunk, as `_run_run`, one call each."""
        spent, start = 0.0, position
        for item in unit.items or ():
            if (position >= limit or self.stop) and (position == start or _splits(unit)):
                out.stopped_at = position
                break
            timeout = task.timeout or self.default_timeout
            began = monotonic()
            if self.slot.start(position, began, timeout) <= position:
                out.stopped_at = position  # the rest was handed to other processes
                break
            try:
                _, args, kwargs, attempts = read_item(item)
            except ItemError as exc:
                self._reject(unit, item, exc.reason, answers, out)
                position += 1
                continue
            out.started += 1
            try:
                value = task.fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - a failing task is data, whatever it raised
                self._failed(unit, task, item, exc, answers, out, began, timeout)
                position += 1
                continue
            elapsed = monotonic() - began
            spent += elapsed
            try:
                answers.value(item[0], value, elapsed * 1000, attempts)
            except NotJSON as exc:
                self._not_json(unit, item, exc, elapsed, answers, out)
            position += 1
        return spent, position

    # -- the endings of one task --------------------------------------------------------------

    def _not_json(
        self,
        unit: Unit,
        item: list[Any],
        exc: Exception,
        elapsed: float,
        answers: Answers,
        out: Outcome,
    ) -> None:
        err = error("ResultNotJSON", f"the task returned what JSON cannot hold: {exc}")
        self._dead(unit, item, err, "result is not JSON", answers, out, elapsed)

    def _failed(
        self,
        unit: Unit,
        task: Task,
        item: list[Any],
        exc: BaseException,
        answers: Answers,
        out: Outcome,
        began: float,
        timeout: float | None,
    ) -> None:
        if isinstance(exc, TaskTimeout):
            err = error("TaskTimeout", f"timed out after {timeout or 0:g} s")
            self._fail(unit, task, item, err, answers, out, began, crashed=True)
            return
        trace = traceback.format_exc() if self.tracebacks else ""
        err = error(type(exc).__name__, str(exc), trace)
        _, args, kwargs, _ = read_item(item)
        if isinstance(exc, TypeError) and not task.arguments_fit(args, kwargs):
            reason = f"wrong arguments for task {unit.task!r}: {exc}"
            self._dead(unit, item, err, reason, answers, out, monotonic() - began)
            return
        self._fail(unit, task, item, err, answers, out, began, crashed=False)

    def _fail(
        self,
        unit: Unit,
        task: Task,
        item: list[Any],
        err: dict[str, str],
        answers: Answers,
        out: Outcome,
        began: float,
        *,
        crashed: bool,
    ) -> None:
        """A failed attempt: retried alone while attempts are left, else dead."""
        task_id, args, kwargs, attempts = read_item(item)
        attempts += 1
        limit = task.max_crash_attempts if crashed else task.max_attempts
        elapsed = monotonic() - began
        if attempts < limit:
            try:
                retry = (  # a single task keeps every field of its own ("rerun", ...)
                    rebuild(unit, [[task_id, args, kwargs, attempts]])
                    if unit.single
                    else with_reply(
                        encode_task(task_id, unit.task, args, kwargs, unit.producer, attempts),
                        unit,
                    )
                )
            except NotJSON as exc:
                reason = f"cannot be written back for another attempt: {exc}"
                self._dead(unit, item, err, reason, answers, out, elapsed, attempts)
                return
            out.retries.append((int(task.retry_delay(attempts) * 1000), retry))
            return
        reason = f"failed after {attempts} attempt{'s' if attempts > 1 else ''}: {err['type']}"
        self._dead(unit, item, err, reason, answers, out, elapsed, attempts)

    def _dead(
        self,
        unit: Unit,
        item: list[Any],
        err: dict[str, str],
        reason: str,
        answers: Answers,
        out: Outcome,
        elapsed: float = 0.0,
        attempts: int | None = None,
    ) -> None:
        """Failed for good: an error answer and a dead letter, always together."""
        if attempts is None:
            attempts = read_item(item)[3] + 1
        out.dead.append(answers.dead(unit, item, err, reason, attempts, elapsed * 1000))

    def _reject(self, unit: Unit, item: Any, reason: str, answers: Answers, out: Outcome) -> None:
        """A task that cannot run at all: dead at once, answered when it has an id."""
        try:
            read_item(item)
        except ItemError as exc:
            if exc.task_id is not None:
                answers.error(exc.task_id, error("PayloadError", reason), 0.0, 0)
            payload = shown(item)
            out.dead.append(
                encode_dead(
                    payload, reason, task_id=exc.task_id, name=unit.task, worker=self.worker
                )
            )
            return
        self._dead(unit, item, error("PayloadError", reason), reason, answers, out, 0.0, 0)


_Step = Callable[[bytes, int, int, Outcome, dict[str, list[float]]], int]
"""How a batch runs one element: `Executor._run_element`, or its guarded form."""


def _splits(unit: Unit) -> bool:
    """Whether a chunk can be cut in two and written again: not when a task holds a value
    that parses yet cannot be written (nesting deeper than the encoder allows). Such a
    chunk runs to its end before the loop stops."""
    try:
        codec.dumps(unit.body)
    except NotJSON:
        return False
    return True
