"""Run a batch of task payloads and say what to write back. No Redis in here.

Every way a task can end is data in the outcome, never an exception out of the loop:
ok -> a result; raised with attempts left -> a retry through the delayed set; raised for the
last time, timed out, bad arguments, unknown task, garbage payload -> an error result (when
the payload had an id, so the run still completes) and a dead letter with the reason.
"""

from __future__ import annotations

import traceback
from time import perf_counter
from types import FrameType

from redpool.codec import NotJSON
from redpool.envelope import (
    MAX_PAYLOAD,
    Outcome,
    TaskEnvelope,
    encode_result,
    error,
    failure,
    parse_task,
    rejection,
    with_attempts,
)
from redpool.errors import PayloadError, TaskTimeout
from redpool.registry import Registry, Task
from redpool.workers import slots
from redpool.workers.slots import Slot

_OURS = frozenset({__file__, slots.__file__})


class Executor:
    def __init__(
        self,
        registry: Registry,
        worker: str,
        slot: Slot,
        default_timeout: float | None = None,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        self.registry = registry
        self.worker = worker
        self.slot = slot
        self.default_timeout = default_timeout
        self.max_payload = max_payload

    def on_alarm(self, _signum: int, frame: FrameType | None) -> None:
        """SIGALRM handler: the supervisor's word that the running task is over its time.

        The one signal handler that raises: a timeout has to interrupt the task's own code. It
        raises only while a task runs past its deadline and only in a frame that is not ours,
        so a task that finished just as the signal came is not charged and our bookkeeping is
        never interrupted half-way.
        """
        if self.slot.expired() and frame is not None and frame.f_code.co_filename not in _OURS:
            raise TaskTimeout

    def run_batch(self, held: list[bytes]) -> Outcome:
        out = Outcome()
        for position, raw in enumerate(held):
            self.run_one(raw, position, out)
        return out

    def run_one(self, raw: bytes, position: int, out: Outcome) -> None:
        try:
            env = parse_task(raw, self.max_payload)
        except PayloadError as exc:
            self._reject(raw, exc.reason, out)
            return
        task = self.registry.get(env.task)
        if task is None:
            self._reject(raw, f"unknown task {env.task!r} (not registered with this worker)", out)
            return
        slot = self.slot
        slot.start(position, task.timeout or self.default_timeout)
        started = perf_counter()
        try:
            value = task.fn(*env.args, **env.kwargs)
        except TaskTimeout:
            slot.finish()
            limit = task.timeout or self.default_timeout
            err = error("TaskTimeout", f"timed out after {limit or 0:g} s")
            self._fail(env, task, err, out, crashed=True)
            return
        except BaseException as exc:  # noqa: BLE001 - a failing task is data, whatever it raised
            slot.finish()
            self._raised(env, task, exc, out)
            return
        slot.finish()
        ms = (perf_counter() - started) * 1000
        try:
            out.results.append(
                encode_result(
                    env.id,
                    env.task,
                    ok=True,
                    value=value,
                    worker=self.worker,
                    attempts=env.attempts,
                    ms=ms,
                    producer=env.producer,
                )
            )
        except NotJSON as exc:
            err = error("ResultNotJSON", f"the task returned a value JSON cannot hold: {exc}")
            self._dead(env, err, "result is not JSON", out)
            return
        out.ok += 1

    def _raised(self, env: TaskEnvelope, task: Task, exc: BaseException, out: Outcome) -> None:
        err = error(type(exc).__name__, str(exc), traceback.format_exc())
        if isinstance(exc, TypeError) and not task.arguments_fit(env.args, env.kwargs):
            self._dead(env, err, f"wrong arguments for task {env.task!r}: {exc}", out)
            return
        self._fail(env, task, err, out, crashed=False)

    def _fail(
        self, env: TaskEnvelope, task: Task, err: dict[str, str], out: Outcome, *, crashed: bool
    ) -> None:
        attempts = env.attempts + 1
        limit = task.max_crash_attempts if crashed else task.max_attempts
        if attempts < limit:
            try:
                retry = with_attempts(env.raw, attempts)
            except NotJSON as exc:
                reason = f"cannot be written back for another attempt: {exc}"
                self._dead(env, err, reason, out, attempts=attempts)
                return
            out.retries.append((int(task.retry_delay(attempts) * 1000), retry))
            return
        reason = f"failed after {attempts} attempt{'s' if attempts > 1 else ''}: {err['type']}"
        self._dead(env, err, reason, out, attempts=attempts)

    def _dead(
        self,
        env: TaskEnvelope,
        err: dict[str, str],
        reason: str,
        out: Outcome,
        attempts: int | None = None,
    ) -> None:
        attempts = env.attempts + 1 if attempts is None else attempts
        result, letter = failure(env, err, reason, attempts, self.worker)
        out.results.append(result)
        out.dead.append(letter)
        out.failed += 1

    def _reject(self, raw: bytes, reason: str, out: Outcome) -> None:
        """Not a task we can run: dead-letter it, and answer it if it has an id."""
        result, letter = rejection(raw, reason, self.worker)
        if result is not None:
            out.results.append(result)
            out.failed += 1
        out.dead.append(letter)
