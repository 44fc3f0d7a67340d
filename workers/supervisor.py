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
from typing import cast

from redpool import codec
from redpool.connection import Outage, connect
from redpool.errors import Aborted
from redpool.keys import Keys, instance_id
from redpool.registry import Registry
from redpool.scripts import Scripts
from redpool.state import snapshot
from workers.child import child_main
from workers.requeue import ALL, Loss, return_tasks
from workers.settings import WorkerSettings
from workers.slots import SlotTable

log = logging.getLogger("redpool.workers")
_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_FOREVER = 2**62


class Supervisor:
    def __init__(self, settings: WorkerSettings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.keys = Keys(settings.pipeline)
        self.client = connect(settings.redis)
        self.scripts = Scripts.register(self.client)
        self.id = instance_id()
        self.slots = SlotTable(settings.processes)
        self.procs: list[BaseProcess | None] = [None] * settings.processes
        self.alarmed: list[float] = [0.0] * settings.processes
        self.timed_out: list[bool] = [False] * settings.processes
        self.told_to_stop: list[bool] = [False] * settings.processes
        self.signals = 0
        self.done = False
        self.outage = Outage(log, abort=lambda: self.signals > 1)
        self._ctx = multiprocessing.get_context("fork")
        self._due: dict[str, float] = {}
        self._started = round(time.time(), 3)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Exit code: 0 after a graceful stop or when done, 1 after a stop at once."""
        for sig in _SIGNALS:
            signal.signal(sig, self._on_signal)
        self._heartbeat()  # registered before any child can hold a task: reapers find it
        for index in range(self.settings.processes):
            self._spawn(index)
        self._heartbeat()  # and now with the children's pids
        log.info(
            "worker %s: %d processes on pipeline %r",
            self.id,
            len(self.procs),
            self.settings.pipeline,
        )
        try:
            while not self._finished():
                self._tick()
        except Aborted:  # told to stop at once while Redis was away
            pass
        return self._shut_down()

    def _on_signal(self, _signum: int, _frame: object) -> None:
        """Only counts: the loop acts on it (1 = drain and stop, 2 = stop at once)."""
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
        for ready in wait(sentinels, timeout=0.05) if sentinels else ():
            index = next(i for i, p in enumerate(self.procs) if p and p.sentinel == ready)
            self._on_death(index)
        self._check_deadlines()
        if self._every("promote", 0.2):
            self.outage.call(
                self.scripts.promote, keys=[self.keys.delayed, self.keys.tasks], args=[500]
            )
        if self._every("heartbeat", self.settings.lease / 3):
            self._heartbeat()
            self._reap()
        if self.settings.exit_when_done and not self.stopping and self._every("done", 0.25):
            state = self.outage.call(snapshot, self.client, self.keys)
            if state.closed and state.idle:
                log.info("stream closed and nothing left to run; stopping")
                self.done = True

    def _shut_down(self) -> int:
        at_once = self.signals > 1
        if at_once:
            for proc in self.procs:
                if proc is not None and proc.pid is not None:
                    os.kill(proc.pid, signal.SIGKILL)
            for index, proc in enumerate(self.procs):
                if proc is not None:
                    proc.join()
                    self._give_back(index, Loss("worker stopped at once"), retry_outage=False)
        try:
            Outage(log, abort=lambda: True).call(
                self.scripts.forget,
                keys=[self.keys.leases, self.keys.workers],
                args=[self.id, _FOREVER],
            )
        except Exception:  # noqa: BLE001 - Redis gone while stopping: the lease runs out
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
            args=(self.settings, self.registry, self.id, index, slot),
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
            log.warning("stopping: finishing the tasks in hand (signal again to stop at once)")
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
            loss = Loss(
                f"worker process died ({how}) while running this task", charge=slot.position
            )
            log.warning("child %d (pid %s) died (%s); replacing it", index, proc.pid, how)
        self.procs[index] = None
        self._give_back(index, loss)
        if not self.stopping:
            self._spawn(index)
            self._heartbeat()  # publishes the new child's pid

    def _give_back(self, index: int, loss: Loss, retry_outage: bool = True) -> None:
        inflight = self.keys.inflight(self.id, index)
        outage = self.outage if retry_outage else Outage(log, abort=lambda: True)
        try:
            outage.call(
                return_tasks, self.client, self.keys, inflight, loss, self.registry, self.id
            )
        except Exception:  # noqa: BLE001 - Redis gone at a hard stop: our lease will expire
            log.warning("could not give back tasks of child %d; they return after the lease", index)

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

    # -- lease, reaping, timers --------------------------------------------------------------

    def _describe(self) -> bytes:
        """What `redpool status` shows, and what a reaper needs (how many inflight lists)."""
        return codec.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "processes": self.settings.processes,
                "lease": self.settings.lease,
                "children": [p.pid if p else None for p in self.procs],
                "started": self._started,
            }
        )

    def _heartbeat(self) -> None:
        lease_ms = int(self.settings.lease * 1000)
        self.outage.call(
            self.scripts.heartbeat,
            keys=[self.keys.leases, self.keys.workers],
            args=[self.id, lease_ms, self._describe()],
        )

    def _reap(self) -> None:
        """Give back the tasks of every host whose lease ran out. Safe when reapers race."""
        now = self.outage.call(self.client.time)
        now_ms = now[0] * 1000 + now[1] // 1000
        expired = cast(
            list[tuple[bytes, float]],
            self.outage.call(
                self.client.zrangebyscore, self.keys.leases, "-inf", now_ms, withscores=True
            ),
        )
        for raw_id, score in expired:
            self._reap_host(raw_id.decode(), int(score))

    def _reap_host(self, wid: str, expiry: int) -> None:
        info = self.outage.call(self.client.hget, self.keys.workers, wid)
        processes = int(codec.loads(info).get("processes", 0)) if info else 0
        loss = Loss(f"worker host {wid} stopped renewing its lease", charge=ALL)
        moved = sum(
            self.outage.call(
                return_tasks,
                self.client,
                self.keys,
                self.keys.inflight(wid, i),
                loss,
                self.registry,
                self.id,
            )
            for i in range(processes)
        )
        self.outage.call(
            self.scripts.forget, keys=[self.keys.leases, self.keys.workers], args=[wid, expiry]
        )
        log.warning("reaped worker host %s: %d task(s) given back", wid, moved)

    def _every(self, name: str, seconds: float) -> bool:
        now = time.monotonic()
        if now < self._due.get(name, 0.0):
            return False
        self._due[name] = now + seconds
        return True


def run_workers(settings: WorkerSettings, registry: Registry) -> int:
    return Supervisor(settings, registry).run()
