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
from time import perf_counter

import redis

from redpool.connection import Outage, connect
from redpool.errors import RedpoolError
from redpool.keys import Keys
from redpool.registry import Registry
from redpool.scripts import Scripts
from workers.execute import Executor
from workers.settings import WorkerSettings
from workers.slots import Slot

log = logging.getLogger("redpool.workers")
_PR_SET_PDEATHSIG = 1
EXIT_NO_START = 3


class Child:
    def __init__(
        self,
        settings: WorkerSettings,
        registry: Registry,
        worker_id: str,
        index: int,
        slot: Slot,
        client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.keys = Keys(settings.pipeline)
        self.inflight = self.keys.inflight(worker_id, index)
        self.client = client if client is not None else connect(settings.redis)
        self.scripts = Scripts.register(self.client)
        name = f"{worker_id}:{index}"
        self.executor = Executor(registry, name, slot, settings.task_timeout, settings.max_payload)
        self.stopping = False
        self.outage = Outage(log)
        self.batch = 1
        self.per_task = 0.0
        self.done = 0
        self._parent = os.getppid()

    def run(self) -> int:
        """Until told to stop, the parent dies, or ``max_tasks_per_child`` is reached."""
        limit = self.settings.max_tasks_per_child
        while not self.stopping:
            self.tick()
            if limit is not None and self.done >= limit:
                break
            if os.getppid() != self._parent:
                log.warning("supervisor is gone; child exiting")
                break
        return 0

    def tick(self) -> int:
        """Take, run, commit one batch; returns how many tasks it held (0 when idle)."""
        held = self.outage.call(
            self.scripts.take_or_wait,
            self.client,
            self.keys.tasks,
            self.inflight,
            self.batch,
            self.settings.block_seconds,
        )
        if not held:
            return 0
        started = perf_counter()
        outcome = self.executor.run_batch(held)
        self._adapt(perf_counter() - started, len(held))
        args = outcome.script_args(held)
        keys = [
            self.inflight,
            self.keys.results,
            self.keys.dead,
            self.keys.delayed,
            self.keys.stats,
        ]
        if not self.outage.call(self.scripts.commit, keys=keys, args=args):
            log.warning(
                "%d task(s) were given back while running (lease lost?); results dropped, "
                "they run again elsewhere",
                len(held),
            )
        self.done += len(held)
        return len(held)

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
        """Only sets a flag: stopping half-way through a commit is what we must never do."""
        self.stopping = True


def child_main(
    settings: WorkerSettings, registry: Registry, worker_id: str, index: int, slot: Slot
) -> None:
    """Entry point of a forked child (signals arrive blocked; unblocked once handled)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; see supervisor.py
    try:
        child = Child(settings, registry, worker_id, index, slot)
    except RedpoolError as exc:  # Redis unreachable for the whole wait: one line, not a trace
        log.error("child %d cannot start: %s", index, exc)
        os._exit(EXIT_NO_START)
    # Everything alive now (modules, the registry) lives as long as the child: keep it out
    # of the cyclic GC's full collections, which otherwise rescan it every few batches and
    # cost about a third of the per-task time on tiny tasks (measured: 7.3 -> 4.4 us/task).
    gc.freeze()
    signal.signal(signal.SIGTERM, child.request_stop)
    signal.signal(signal.SIGALRM, child.executor.on_alarm)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    os._exit(child.run())


def _die_with_parent() -> None:
    """A child outliving a SIGKILLed supervisor would keep working on tasks a reaper will
    hand to someone else; dying with it makes a killed host a clean host failure."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the getppid() check in run() remains
        pass
