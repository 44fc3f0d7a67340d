"""A worker child: ``while not stopping: tick()``.

One tick = take a batch into this child's inflight list (take.lua, or BLMOVE when the queue
is empty) -> run it -> results, retries, dead letters and the ack in one script (commit.lua).
The child never holds a task anywhere but its inflight list, so whatever kills it, the
supervisor or a reaper finds every task it had.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import time
from time import monotonic

from redpool.answers import Outcome
from redpool.envelope import split_at, tasks_in
from redpool.errors import RedpoolError, TooLarge
from redpool.holding import Taken
from redpool.pipeline import Pipeline
from redpool.registry import Registry
from redpool.settings import RedisSettings
from redpool.workers.execute import Executor
from redpool.workers.giveback import ALL, Loss, sorter
from redpool.workers.settings import WorkerSettings
from redpool.workers.slots import CUT_DONE, CUT_PENDING, NO_CUT, Slot

log = logging.getLogger("redpool.workers")
_PR_SET_PDEATHSIG = 1
CALLERS_CHECK = 1.0
"""Seconds a reading of the live callers serves (a caller's tasks are skipped once it is gone)."""
RESULTS_CHECK = 0.1
"""Seconds between a child's looks at how many results wait for the sink (``max_results``)."""
EXIT_NO_START = 3


class Child:
    def __init__(
        self,
        pipe: Pipeline,
        settings: WorkerSettings,
        registry: Registry,
        worker_id: str,
        index: int,
        slot: Slot,
    ) -> None:
        self.settings = settings
        self.pipe = pipe
        self.worker_id = worker_id
        self.index = index
        name = f"{worker_id}:{index}"
        self.name = name
        self.registry = registry
        self.slot = slot
        self.executor = Executor(
            registry,
            name,
            slot,
            settings.task_timeout,
            settings.max_payload,
            settings.batch_seconds,
            settings.unknown_wait,
            settings.tracebacks,
        )
        self.executor.callers = self._caller_live
        self._callers: frozenset[str] = frozenset()
        self._callers_read = -CALLERS_CHECK
        self.stopping = False
        self.batch = settings.first_batch
        self.per_task = 0.0
        self.done = 0
        self._parent = os.getppid()
        self._results_checked = -RESULTS_CHECK
        self._full = False
        self._lease_lost = False

    def run(self) -> int:
        """Until told to stop, the parent dies, or ``max_tasks_per_child`` tasks started."""
        limit = self.settings.max_tasks_per_child
        while not self.stopping:
            if limit is not None and self.done >= limit:
                break
            self.tick()
            if os.getppid() != self._parent:
                log.warning("supervisor is gone; child exiting")
                break
        return 0

    def tick(self) -> int:
        """Take, run, commit one batch; returns how many tasks it was done with (0 when idle):
        run, or refused as garbage; not those it gave back unstarted."""
        if self._results_full():
            return 0
        taken = self.pipe.take(self.worker_id, self.index, self.batch, self.settings.block_seconds)
        if not taken.leased:
            self._unleased()
            return 0
        self._lease_lost = False
        if not taken.held:
            return 0
        started = monotonic()
        limit = self.settings.max_tasks_per_child
        budget = None if limit is None else limit - self.done
        outcome = self.executor.run_batch(taken.held, budget)
        self._adapt(monotonic() - started, len(taken.held))
        held = self._settle(taken.held, outcome)
        if outcome.replies:
            self._drop_gone_callers(outcome)
        if self._commit(taken, held, outcome):
            self.slot.committed(outcome.ok + outcome.failed)
        else:
            log.warning(
                "%d task(s) were given back while they ran (lease lost?): their results were "
                "not written, and they run again elsewhere",
                outcome.started,
            )
        self.done += outcome.started
        held_tasks = sum(tasks_in(raw) for raw in taken.held)
        return held_tasks if outcome.stopped_at is None else outcome.stopped_at

    def _commit(self, taken: Taken, held: int, outcome: Outcome) -> int:
        """`Pipeline.commit`; when Redis will not take it (`TooLarge`: an answer over its size
        limit), it never will: the batch's tasks are dead, each answered with the refusal, so
        every task still ends with one result and no child loops on the batch. Any other
        refusal is the supervisor's to handle; a passing state (a failover) is waited out."""
        try:
            return self.pipe.commit(taken.holding, taken, held, outcome)
        except TooLarge as exc:
            reason = f"Redis refused the commit of its answers: {exc}"
            loss = Loss(reason, "RedisRefused", charge=ALL, final=True)
            sort = sorter(loss, self.registry, self.name)
            returned = self.pipe.give_back(taken.holding, sort)
            log.warning("%d task(s) dead: %s", len(returned.dead), reason)
            return 0

    def _unleased(self) -> None:
        """This host's lease ran out (its supervisor stalled, or lost Redis): other hosts
        reap it, so take nothing until the supervisor renews the lease, or dies and takes
        this child with it."""
        if not self._lease_lost:
            log.warning("this host's lease ran out; taking no tasks until it is renewed")
        self._lease_lost = True
        time.sleep(self.settings.block_seconds)  # what it waits on is the supervisor's renewal

    def _caller_live(self, caller: str, fresh: float = CALLERS_CHECK) -> bool:
        """A caller's lease holds, by a reading of `callers` at most ``fresh`` seconds old
        (read again at once for a caller not in it: one that just joined)."""
        now = monotonic()
        if caller in self._callers and now < self._callers_read + fresh:
            return True
        if now >= self._callers_read + 0.01:
            self._callers = frozenset(self.pipe.live_callers())
            self._callers_read = now
        return caller in self._callers

    def _drop_gone_callers(self, outcome: Outcome) -> None:
        """Answers for a caller that left or lapsed while the batch ran are not written: its
        reply list was dropped, and nobody would read them. (They stay counted as replied:
        they were never results either.)"""
        for caller in list(outcome.replies):
            if not self._caller_live(caller, fresh=0.1):
                del outcome.replies[caller]

    def _results_full(self) -> bool:
        """Over ``max_results``: wait a little instead of taking more (back-pressure from
        the sink's side, as the producers' ``max_backlog`` is from theirs). Looked at every
        `RESULTS_CHECK` seconds, as a read per take would cost more than the bound saves."""
        bound = self.settings.max_results
        if bound is None:
            return False
        now = monotonic()
        if now < self._results_checked + RESULTS_CHECK:
            return self._full
        self._results_checked = now
        waiting = self.pipe.results_waiting()
        if waiting > bound and not self._full:
            log.warning(
                "%d results wait for the sink (more than --max-results %d): taking no new "
                "tasks until it catches up",
                waiting,
                bound,
            )
        self._full = waiting > bound
        if self._full:
            time.sleep(RESULTS_CHECK)  # what it waits on is a sink elsewhere: nothing to block on
        return self._full

    def _settle(self, held: list[bytes], outcome: Outcome) -> int:
        """How many elements the commit is fenced on, and which tasks it sends back.

        A batch the supervisor cut is, in Redis, only the part before the cut: the rest went
        back already, and the commit is fenced on the part. Tasks this child did not start
        before the cut (it was told to stop, or reached its limit) go back with the commit.
        """
        fence = held
        if self.slot.cut_state != NO_CUT:
            while self.slot.cut_state == CUT_PENDING:  # the supervisor is moving the rest
                if os.getppid() != self._parent:
                    os._exit(0)  # a reaper returns all of it
                time.sleep(0.001)
            if self.slot.cut_state == CUT_DONE:
                fence = split_at(held, int(self.slot.cut))[0]
        if outcome.stopped_at is not None:
            outcome.back = split_at(fence, outcome.stopped_at)[1]
        return len(fence)

    def _adapt(self, elapsed: float, count: int) -> None:
        """Size the next batch to take about ``batch_seconds``: big for tiny tasks, 1 for long.

        Long tasks one at a time is what keeps a slow batch from idling the other processes
        at the end of a run (the straggler problem of static chunks).
        """
        per_task = elapsed / count
        self.per_task = per_task if not self.per_task else 0.5 * self.per_task + 0.5 * per_task
        wanted = int(self.settings.batch_seconds / max(self.per_task, 1e-7))
        self.batch = max(1, min(self.settings.max_batch, wanted, self.batch * 4))

    def request_stop(self, _signum: int, _frame: object) -> None:
        """Only sets flags: the running task finishes, no other starts, and the batch's
        unstarted tasks go back with the commit; stopping half-way through a commit is what
        we must never do."""
        self.stopping = True
        self.executor.stop = True


def child_main(
    redis: RedisSettings,
    pipeline: str,
    settings: WorkerSettings,
    registry: Registry,
    worker_id: str,
    index: int,
    slot: Slot,
) -> None:
    """Entry point of a forked child (signals arrive blocked; unblocked once handled). It
    connects for itself: a connection is never shared across a fork."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; see supervisor.py
    try:
        pipe = Pipeline.connect(redis, pipeline, log=log)
        child = Child(pipe, settings, registry, worker_id, index, slot)
    except RedpoolError as exc:  # Redis unreachable for the whole wait: one line, not a trace
        log.error("child %d cannot start: %s", index, exc)
        os._exit(EXIT_NO_START)
    # Everything alive now (modules, the registry) lives as long as the child: keep it out
    # of the cyclic GC's full collections, which otherwise rescan it every few batches and
    # cost a large part of the per-task time on tiny tasks (the README has the figures).
    gc.freeze()
    signal.signal(signal.SIGTERM, child.request_stop)
    signal.signal(signal.SIGALRM, child.executor.on_alarm)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        code = child.run()
    except RedpoolError as exc:  # Redis refused something: one line, not a trace
        log.error("child %d stopped: %s", index, exc)
        code = 1
    os._exit(code)


def _die_with_parent() -> None:
    """A child outliving a SIGKILLed supervisor would keep working on tasks a reaper will
    hand to someone else; dying with it makes a killed host a clean host failure."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the getppid() check in run() remains
        pass
