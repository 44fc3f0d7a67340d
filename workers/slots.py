"""Shared memory between the supervisor and its children: what each child is running.

One row per child: [deadline, index]. The child writes its current task's deadline
(``inf`` for none) and position in the batch before calling it and zeroes the deadline after;
the supervisor reads them to time tasks out and, when a child dies, to charge the failed
attempt to the one task that was running instead of to its whole batch. Two float stores
per task are the whole cost on the hot path.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from typing import Any

_ROW = 2


class SlotTable:
    def __init__(self, size: int) -> None:
        self._mem: Any = multiprocessing.RawArray("d", size * _ROW)

    def slot(self, index: int) -> Slot:
        return Slot(self._mem, index)


class Slot:
    """One child's row; a standalone one (no supervisor) is backed by a private array."""

    def __init__(self, mem: Any = None, index: int = 0) -> None:
        self._mem = mem if mem is not None else multiprocessing.RawArray("d", _ROW)
        self._at = index * _ROW

    def start(self, position: int, timeout: float | None) -> None:
        self._mem[self._at + 1] = position
        self._mem[self._at] = time.monotonic() + timeout if timeout else math.inf

    def finish(self) -> None:
        self._mem[self._at] = 0.0

    @property
    def deadline(self) -> float:
        """0 when no task runs."""
        return float(self._mem[self._at])

    @property
    def position(self) -> int | None:
        """Index in the held batch of the task running now, if one is."""
        return int(self._mem[self._at + 1]) if self.deadline else None

    def expired(self) -> bool:
        deadline = self.deadline
        return 0.0 < deadline <= time.monotonic()

    def reset(self) -> None:
        self._mem[self._at] = 0.0
        self._mem[self._at + 1] = 0.0
