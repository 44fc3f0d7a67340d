"""A child that keeps dying outside its tasks: replaced later each time, reset by progress."""

from __future__ import annotations

from redpool.workers.crashes import FIRST_DELAY, MAX_DELAY, CrashLoop


def test_deaths_outside_a_task_back_off_until_a_commit_resets_them() -> None:
    loop = CrashLoop(2)
    assert [loop.died(0, 5, outside_a_task=True) for _ in range(3)] == [1, 2, 3]
    assert loop.delay(0) == 4 * FIRST_DELAY and loop.delay(1) == 0.0
    assert loop.died(0, 6, outside_a_task=True) == 1  # it committed something in between
    assert loop.died(0, 6, outside_a_task=False) == 0  # died in a task: that task is charged
    assert loop.delay(0) == 0.0


def test_the_delay_is_bounded() -> None:
    loop = CrashLoop(1)
    for _ in range(50):
        loop.died(0, 0, outside_a_task=True)
    assert loop.delay(0) == MAX_DELAY
