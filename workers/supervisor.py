"""The supervisor of one worker host: spawn, watch, replace, time out, heartbeat, reap.

It never runs tasks and never touches their payloads on the happy path; it is the part that
notices when something died and gives the dead thing's tasks back.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from redpool.codec import NotJSON
from redpool.envelope import split_at
from redpool.errors import Aborted, RedisRefused, RedpoolError
from redpool.keys import instance_id
from redpool.pipeline import Pipeline, Returned, Sort
from redpool.registry import Registry
from redpool.settings import RedisSettings
from redpool.workers.child import child_main
from redpool.workers.crashes import CHARGE_AFTER, CrashLoop
from redpool.workers.giveback import ALL, Loss, sorter
from redpool.workers.settings import WorkerSettings
from redpool.workers.slots import NO_CUT, SlotTable

log = logging.getLogger("redpool.workers")
_SIGNALS = {signal.SIGTERM, signal.SIGINT}

ORPHAN_SWEEP = 60.0
"""Seconds between a host's SCANs for in-flight lists no registered host names (orphans): a
SCAN walks the whole database, so it is rare; lapsed hosts are reaped at every heartbeat."""

STOP_WINDOW = 1.0
"""Seconds after a first stop signal in which more stop signals are the same request.

`timeout`, for one, signals this process and then its whole process group, so one request
reaches us twice, microseconds apart; counted as two, it would be a stop at once that hands
back the tasks in hand. A person asking twice is slower, or is told by the stop's log line
to wait.
"""


class Supervisor:
    def __init__(
        self, redis: RedisSettings, pipeline: str, settings: WorkerSettings, registry: Registry
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.registry = registry
        self.pipe = Pipeline.connect(
            redis, pipeline, log=log, abort=self._give_up, shards=settings.shards
        )
        self.id = instance_id()
        self.slots = SlotTable(settings.processes)
        self.procs: list[BaseProcess | None] = [None] * settings.processes
        self.alarmed: list[float] = [0.0] * settings.processes
        self.timed_out: list[bool] = [False] * settings.processes
        self.told_to_stop: list[bool] = [False] * settings.processes
        self.crashes = CrashLoop(settings.processes)
        self._respawn_at: dict[int, float] = {}
        """Dead children's slots -> when to replace them."""
        self.stranded: set[int] = set()
        """Children whose tasks could not be given back: they stay in their in-flight lists."""
        self.signals = 0
        """Stop requests: 1 = drain and stop, 2 = stop at once."""
        self._first_signal = 0.0
        self.done = False
        self._ctx = multiprocessing.get_context("fork")
        self._due: dict[str, float] = {}
        self._joined_ms = 0
        """This host's start on the Redis clock (its first heartbeat)."""
        self._waiting_logged = False
        self._seen_work = False
        self._started = round(time.time(), 3)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Exit code: 0 after a graceful stop or when done, 1 after a stop at once."""
        for sig in _SIGNALS:
            signal.signal(sig, self._on_signal)
        # registered before any child can hold a task: reapers find it
        self._joined_ms = self._heartbeat()
        for index in range(self.settings.processes):
            self._spawn(index)
        self._heartbeat()  # and now with the children's pids
        log.info(
            "worker %s: %d processes on pipeline %r",
            self.id,
            len(self.procs),
            self.pipe.name,
        )
        try:
            while not self._finished():
                self._tick()
        except Aborted:  # told to stop while Redis was away: our lease is gone, or going
            self.signals = 2
        except Exception as exc:  # a bug, a refused command: nothing to go on with
            # Stop the children and give their tasks back before the error goes up: left
            # running, they would keep this process from exiting (multiprocessing joins them).
            self.signals = 2
            self._shut_down()
            if isinstance(exc, RedpoolError):
                raise
            raise RedpoolError(f"worker host failed: {type(exc).__name__}: {exc}") from exc
        return self._shut_down()

    def _give_up(self) -> bool:
        """Whether a Redis call should stop waiting for Redis: after a second stop request,
        or a first one while Redis has been away longer than our lease (other hosts reap
        this one by then; waiting longer would be waiting for ever)."""
        if self.signals > 1:
            return True
        return self.signals == 1 and self.pipe.away_for() > self.settings.lease

    def _on_signal(self, _signum: int, _frame: object) -> None:
        """Only counts requests: the loop acts on them. A signal within ``STOP_WINDOW`` of
        the first is that request again, delivered through the process group."""
        now = time.monotonic()
        if self.signals == 0:
            self._first_signal = now
        elif now - self._first_signal < STOP_WINDOW:
            return
        self.signals += 1

    @property
    def stopping(self) -> bool:
        return self.signals > 0 or self.done

    def _finished(self) -> bool:
        if self.signals > 1:
            return True
        return (self.signals == 1 or self.done) and all(p is None for p in self.procs)

    def _tick(self) -> None:
        if self.signals == 1 or self.done:
            self._stop_children()
        sentinels = [p.sentinel for p in self.procs if p is not None]
        if not sentinels:  # every child dead and waiting to be replaced: only time passes
            time.sleep(0.05)
        for ready in wait(sentinels, timeout=0.05) if sentinels else ():
            index = next(i for i, p in enumerate(self.procs) if p and p.sentinel == ready)
            self._on_death(index)
        self._respawn()
        self._check_deadlines()
        self._check_stragglers()
        if self._every("promote", 0.2):
            self.pipe.promote()
        if self._every("heartbeat", self.settings.lease / 3):
            self._heartbeat()
            self._reap()
            self.pipe.expire_producers()
            self.pipe.expire_callers()
        if self.settings.exit_when_done and not self.stopping and self._every("done", 0.25):
            self.done = self._run_done()

    def _run_done(self) -> bool:
        """``exit_when_done``: the stream is closed and nothing is left to run, in a run this
        host was up for.

        A run ended before this host started (by the Redis clock), or no run at all, means the
        host came between runs: it waits for the next one (or exits, without
        ``wait_for_run``). A run that came and went between two looks still counts, by its end
        time, and so does one whose work is done but whose sink has not yet marked it ended.
        """
        state = self.pipe.snapshot()
        if not (state.closed and state.idle):
            self._seen_work = True
            return False
        run = state.run
        ours = run is not None and (run.ended is None or run.ended * 1000 >= self._joined_ms)
        if self._seen_work or ours:
            # confirmed with orphan lists too: a SCAN, so only at what looks like the end
            confirmed = self.pipe.snapshot(every_holder=True)
            if not (confirmed.closed and confirmed.idle):
                return False
            log.info("stream closed and nothing left to run; stopping")
            return True
        if not self.settings.wait_for_run:
            log.info("no run has work for the workers; exiting")
            return True
        if not self._waiting_logged:
            self._waiting_logged = True
            log.info("no run has work for the workers; waiting for the next")
        return False

    def _shut_down(self) -> int:
        """Deregister, unless some child's tasks could not be given back (on any path: a
        child that died, or one killed by a stop at once): then the registration stays, so
        another host reaps them once this host's lease runs out."""
        at_once = self.signals > 1
        if at_once:
            for proc in self.procs:
                if proc is not None and proc.pid is not None:
                    os.kill(proc.pid, signal.SIGKILL)
            for index, proc in enumerate(self.procs):
                if proc is not None:
                    proc.join()
                    self._give_back(index, Loss("worker stopped at once"), patient=False)
        for index in sorted(self.stranded):  # one more try; a new child may have emptied it
            self._give_back(index, Loss("worker stopped"), patient=False)
        if self.stranded:
            log.warning(
                "could not give back the tasks of %d child(ren); this host stays registered "
                "and another host gives them back once its lease (%g s) runs out",
                len(self.stranded),
                self.settings.lease,
            )
            return 1
        try:
            self.pipe.impatient().forget(self.id)
        except RedpoolError:  # Redis gone while stopping: our lease runs out, we get reaped
            log.warning("could not deregister; other hosts will reap this one after its lease")
        return 1 if at_once else 0

    # -- children ----------------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        """Fork with SIGTERM/SIGINT blocked, so a signal never hits a half-made child."""
        slot = self.slots.slot(index)
        slot.reset()
        self.alarmed[index], self.timed_out[index] = 0.0, False
        self.told_to_stop[index] = False
        proc = self._ctx.Process(
            target=child_main,
            args=(self.redis, self.pipe.name, self.settings, self.registry, self.id, index, slot),
            name=f"redpool-child-{index}",
        )
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self.procs[index] = proc

    def _stop_children(self) -> None:
        if self.signals and not any(self.told_to_stop):
            log.warning(
                "stopping: finishing the tasks in hand (signal again, %g s or more after the "
                "first, to stop at once)",
                STOP_WINDOW,
            )
        # A child may have had the group's SIGTERM already; its handler only sets flags, so
        # this one is harmless then, and needed when the request was `kill PID` alone.
        for index, proc in enumerate(self.procs):
            if proc is not None and proc.pid is not None and not self.told_to_stop[index]:
                os.kill(proc.pid, signal.SIGTERM)
                self.told_to_stop[index] = True

    def _on_death(self, index: int) -> None:
        proc = self.procs[index]
        assert proc is not None
        proc.join()
        code = proc.exitcode
        slot = self.slots.slot(index)
        if self.timed_out[index]:
            loss = Loss(
                "task timed out and did not stop; its process was killed",
                "TaskTimeout",
                slot.position,
            )
        elif code == 0:
            loss = Loss("worker process exited")
        else:
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            loss = self._crash(index, how, slot.position, slot.done)
            log.warning("child %d (pid %s) died (%s); replacing it", index, proc.pid, how)
        self.procs[index] = None
        self._give_back(index, loss)
        if not self.stopping:
            self._respawn_at[index] = time.monotonic() + self.crashes.delay(index)
            self._respawn()

    def _crash(self, index: int, how: str, position: int | None, done: int) -> Loss:
        """What a child's death charges: the task it was running; when it died outside a
        task again and again, every task it held (see `redpool.workers.crashes`)."""
        deaths = self.crashes.died(index, done, outside_a_task=position is None)
        if deaths < CHARGE_AFTER:
            return Loss(f"worker process died ({how}) while running this task", charge=position)
        return Loss(
            f"worker process died ({how}) {deaths} times in a row outside its tasks", charge=ALL
        )

    def _respawn(self) -> None:
        """Replace the dead children whose time has come (at once, unless in a crash loop)."""
        now = time.monotonic()
        for index, due in list(self._respawn_at.items()):
            if self.stopping:
                del self._respawn_at[index]
            elif due <= now:
                del self._respawn_at[index]
                self._spawn(index)
                self._heartbeat()  # publishes the new child's pid

    def _give_back(self, index: int, loss: Loss, patient: bool = True) -> None:
        """Give back what child ``index`` held. When that fails (Redis gone at a hard stop,
        or refusing), the tasks stay in the child's list: a new child in that slot finishes
        them, and if none comes, the host stays registered for a reaper (``stranded``)."""
        pipe = self.pipe if patient else self.pipe.impatient()
        returned = Returned()
        try:
            for inflight in self.pipe.inflight(self.id, index):
                returned.extend(pipe.give_back(inflight, sorter(loss, self.registry, self.id)))
        except RedpoolError as exc:
            log.warning("could not give back the tasks of child %d: %s", index, exc)
            self.stranded.add(index)
            return
        self.stranded.discard(index)
        if returned.dead:
            log.warning("%d task(s) dead after: %s", len(returned.dead), loss.reason)

    def _check_deadlines(self) -> None:
        """SIGALRM a task over its time; SIGKILL its process if it has not stopped after grace."""
        now = time.monotonic()
        for index, proc in enumerate(self.procs):
            if proc is None or proc.pid is None:
                continue
            deadline = self.slots.slot(index).deadline
            if not 0.0 < deadline <= now:
                continue
            if self.alarmed[index] != deadline:
                self.alarmed[index] = deadline
                os.kill(proc.pid, signal.SIGALRM)
            elif now > deadline + self.settings.timeout_grace and not self.timed_out[index]:
                self.timed_out[index] = True
                os.kill(proc.pid, signal.SIGKILL)

    def _check_stragglers(self) -> None:
        """A child on one task for longer than a whole batch should take, with tasks of its
        batch not started: hand those to the other processes (`_cut`)."""
        now = time.monotonic()
        for index, proc in enumerate(self.procs):
            if proc is None or proc.pid is None or self.told_to_stop[index]:
                continue
            slot = self.slots.slot(index)
            position = slot.position
            if (
                position is not None
                and position + 1 < slot.total
                and slot.cut_state == NO_CUT
                and now - slot.started > self.settings.batch_seconds
            ):
                self._cut(index, proc.pid)

    def _holding(self, index: int) -> tuple[str, list[bytes]]:
        """The in-flight list child ``index`` holds tasks in (one shard's), and what it holds."""
        for holding in self.pipe.inflight(self.id, index):
            held = self.pipe.held(holding)
            if held:
                return holding, held
        return holding, []

    def _cut(self, index: int, pid: int) -> None:
        """Cut child ``index``'s batch after the task it is running, and hand the rest back to
        the head of the queue.

        The child is stopped (SIGSTOP) while the cut is decided: stopped, it has published
        where it is, and it cannot start another task between our reading its position and
        its reading the cut. It resumes at once; the tasks move after, and it waits for that
        (the cut's state) before it commits the part it ran.
        """
        slot = self.slots.slot(index)
        if not _pause(pid):
            return
        try:
            position = slot.position
            if position is None or position + 1 >= slot.total:
                return  # it moved on, or finished, before it stopped
            try:
                holding, held = self._holding(index)
                split_at(held, position + 1)
            except (NotJSON, RedpoolError):  # cannot be written in two: let it run through
                return
            slot.set_cut(position + 1)
        finally:
            os.kill(pid, signal.SIGCONT)
        try:
            kept = self.pipe.cut(holding, position + 1)
        except RedpoolError as exc:
            log.warning("could not hand back the rest of child %d's batch: %s", index, exc)
            kept = None
        slot.cut_settled(kept is not None)
        if kept is not None:
            log.info("child %d is on a slow task; the rest of its batch went back", index)

    # -- lease, reaping, timers --------------------------------------------------------------

    def _describe(self) -> dict[str, Any]:
        """What `redpool status` shows, and what a reaper needs (how many inflight lists)."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "processes": self.settings.processes,
            "lease": self.settings.lease,
            "children": [p.pid if p else None for p in self.procs],
            "started": self._started,
            "done": sum(self.slots.slot(i).done for i in range(self.settings.processes)),
        }

    def _heartbeat(self) -> int:
        """Renew this host's lease; the Redis time in ms. Stops the host (an error) if the
        pipeline was created sharded after it started (`Pipeline.check_layout`)."""
        self.pipe.check_layout()
        return self.pipe.heartbeat(self.id, self.settings.lease, self._describe())

    def _reap(self) -> None:
        """Give back the tasks of every host whose lease ran out. Safe when reapers race."""

        def sort_for(wid: str) -> Sort:
            loss = Loss(f"worker host {wid} stopped renewing its lease", charge=ALL)
            return sorter(loss, self.registry, self.id)

        sweep = self._every("sweep", max(ORPHAN_SWEEP, self.settings.lease))
        try:
            reaped = self.pipe.reap(sort_for, sweep)
        except RedisRefused as exc:  # others' keys: not this host's to die of; next tick again
            log.error("reaping failed: %s", exc)
            return
        for wid, returned in reaped:
            log.warning("reaped worker host %s: %d task(s) given back", wid, returned.count)
            if returned.dead:
                log.warning(
                    "%d task(s) of %s dead after their last attempt", len(returned.dead), wid
                )

    def _every(self, name: str, seconds: float) -> bool:
        now = time.monotonic()
        if now < self._due.get(name, 0.0):
            return False
        self._due[name] = now + seconds
        return True


def _pause(pid: int) -> bool:
    """SIGSTOP ``pid`` and wait (briefly) until it is stopped; False if it is not (it exited,
    or sits in an uninterruptible wait), in which case it is let go again."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            break
        if state in ("T", "t"):
            return True
        time.sleep(0.0005)
    os.kill(pid, signal.SIGCONT)
    return False


def run_workers(
    redis: RedisSettings, pipeline: str, settings: WorkerSettings, registry: Registry
) -> int:
    return Supervisor(redis, pipeline, settings, registry).run()
