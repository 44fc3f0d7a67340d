"""Shared memory between the supervisor and its children: what each child is running.

One row per child. The child writes, before each task, its position in the batch (counted in
tasks across the batch's elements), when it started and its deadline, then reads the cut: the
position before which it must stop, which the supervisor sets when it hands the rest of a
slow batch to other processes. The supervisor reads the row to time tasks out, to charge a
dead child's failed attempt to the one task that was running, and to find a child stuck on a
slow task with tasks still waiting behind it.

The cut needs the child's "write position, then read cut" and the supervisor's "read
position, then write cut" never to cross. The supervisor does its part with the child
stopped (SIGSTOP, see the supervisor): a stopped process has made all its stores visible and
resumes only after the supervisor's, so no lock is taken on the path every task takes.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from typing import Any

DEADLINE, POSITION, STARTED, TOTAL, CUT, CUT_STATE, DONE = range(7)
"""Fields of a row. The executor's loop writes DEADLINE, POSITION and STARTED and reads CUT
itself, through `Slot.view` (a method call per task costs more than the stores). DONE counts
the tasks the row's children committed, across their replacements (`redpool status --watch`
shows a host's rate from it)."""
_ROW = 7

NO_CUT, CUT_PENDING, CUT_DONE, CUT_FAILED = 0.0, 1.0, 2.0, 3.0


def _doubles(raw: Any) -> Any:
    # memoryview stores cost a fraction of ctypes' __setitem__, on a path taken per task
    return memoryview(raw).cast("B").cast("d")


class SlotTable:
    def __init__(self, size: int) -> None:
        self._mem: Any = multiprocessing.RawArray("d", size * _ROW)

    def slot(self, index: int) -> Slot:
        return Slot(self._mem, index)


class Slot:
    """One child's row; a standalone one (no supervisor) is backed by a private array."""

    def __init__(self, mem: Any = None, index: int = 0) -> None:
        self._raw = mem if mem is not None else multiprocessing.RawArray("d", _ROW)
        self._mem = _doubles(self._raw)
        self._at = index * _ROW
        if mem is None:
            self.reset()

    # -- the child ---------------------------------------------------------------------------

    def view(self) -> tuple[Any, int]:
        """(the shared doubles, where this row starts), for the executor's loop."""
        return self._mem, self._at

    def begin(self, total: int) -> None:
        """A new batch of ``total`` tasks: nothing started, no cut."""
        at, mem = self._at, self._mem
        mem[at + CUT_STATE] = NO_CUT
        mem[at + CUT] = math.inf
        mem[at + TOTAL] = total
        mem[at + POSITION] = -1

    def start(self, position: int, started: float, timeout: float | None) -> float:
        """Task ``position`` starts now; returns the cut (stop before it when it is
        ``<= position``). Writes first, then reads: the order the cut depends on."""
        at, mem = self._at, self._mem
        mem[at + POSITION] = position
        mem[at + STARTED] = started
        mem[at + DEADLINE] = started + timeout if timeout else math.inf
        return float(mem[at + CUT])

    def finish(self) -> None:
        """The batch is over (or the task that ran was the last): nothing runs."""
        at, mem = self._at, self._mem
        mem[at + DEADLINE] = 0.0
        mem[at + STARTED] = 0.0

    def committed(self, tasks: int) -> None:
        """``tasks`` more answers written (only this row's child writes DONE)."""
        self._mem[self._at + DONE] += tasks

    @property
    def done(self) -> int:
        return int(self._mem[self._at + DONE])

    @property
    def cut_state(self) -> float:
        return float(self._mem[self._at + CUT_STATE])

    # -- the supervisor ----------------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """0 when no task runs."""
        return float(self._mem[self._at + DEADLINE])

    @property
    def position(self) -> int | None:
        """Position in the held batch of the task running now, if one is."""
        return int(self._mem[self._at + POSITION]) if self.deadline else None

    @property
    def started(self) -> float:
        """When the running task started (time.monotonic), 0 when none runs."""
        return float(self._mem[self._at + STARTED]) if self.deadline else 0.0

    @property
    def total(self) -> int:
        """Tasks in the batch the child holds."""
        return int(self._mem[self._at + TOTAL])

    @property
    def cut(self) -> float:
        return float(self._mem[self._at + CUT])

    def set_cut(self, position: int) -> None:
        """Only with the child stopped: it must not start ``position`` or any task after it."""
        self._mem[self._at + CUT] = position
        self._mem[self._at + CUT_STATE] = CUT_PENDING

    def cut_settled(self, done: bool) -> None:
        """The tasks past the cut are back in the queue (done), or could not be moved."""
        self._mem[self._at + CUT_STATE] = CUT_DONE if done else CUT_FAILED

    def expired(self) -> bool:
        deadline = self.deadline
        return 0.0 < deadline <= time.monotonic()

    def reset(self) -> None:
        """A new child in this row: nothing runs (DONE keeps counting)."""
        at, mem = self._at, self._mem
        for field in range(DONE):
            mem[at + field] = 0.0
        mem[at + CUT] = math.inf
