"""Children that keep dying outside their tasks: respawned with backoff, then charged.

A child that dies while a task runs charges that task, which ends dead after a few tries. One
that dies outside a task (at its commit, at its take: an error in redpool or in Redis, not in
the task) charges nothing, so the same batch comes back to its replacement and the same death
follows: a hot loop, with nothing ever charged. This module counts such deaths slot by slot;
the supervisor waits longer before each replacement, and once deaths repeat it charges every
task the child held, as for a dead host, so the batch ends dead rather than loop for ever.
"""

from __future__ import annotations

CHARGE_AFTER = 2
"""Deaths in a row outside a task, with no batch committed between, from which each death
charges the tasks the child held."""
FIRST_DELAY = 0.1
"""Seconds before a child that died outside a task is replaced; doubled per death in a row."""
MAX_DELAY = 5.0


class CrashLoop:
    """Per slot: deaths in a row outside a task, and the answers committed when last seen."""

    def __init__(self, size: int) -> None:
        self._deaths = [0] * size
        self._done = [0] * size

    def died(self, index: int, done: int, outside_a_task: bool) -> int:
        """A child of slot ``index`` died; ``done`` is the slot's answers committed so far.
        Returns its deaths in a row outside a task (0 when this one was in a task, or the
        slot committed something since the last)."""
        if done > self._done[index] or not outside_a_task:
            self._deaths[index] = 0
        self._done[index] = done
        self._deaths[index] += outside_a_task
        return self._deaths[index]

    def delay(self, index: int) -> float:
        """Seconds to wait before replacing slot ``index``'s child."""
        deaths = self._deaths[index]
        return 0.0 if deaths == 0 else min(FIRST_DELAY * 2 ** (deaths - 1), MAX_DELAY)
