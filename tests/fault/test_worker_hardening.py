"""Worker hosts under the faults of issue 14: a stalled supervisor, a crashed supervisor, a
commit the server refuses, a child that keeps dying outside its tasks.

Each test proves the promise (every task ends with exactly one result, nothing left in
flight) where it used to break. Waits are on observable state with deadlines.
"""

from __future__ import annotations

import signal

import pytest

from tests.procs import wait_for
from tests.runs import Run

pytestmark = pytest.mark.slow


def test_a_stalled_supervisors_children_take_nothing_after_its_reap(run: Run) -> None:
    """SIGSTOP a host's supervisor alone: its lease runs out, another host reaps it, and its
    children, still running, must take nothing more (the take is fenced on the lease); what
    they hold when the host is then killed is an orphan a reaper gives back."""
    stalled = run.host()
    run.start_sink()
    run.submit_many("slow_echo", [[i, 0.002] for i in range(3000)], chunksize=1)
    wait_for(lambda: int(run.client.hget(run.key("stats"), "ok") or 0) > 50, what="progress")
    (stalled_id,) = run.workers()
    stalled.proc.send_signal(signal.SIGSTOP)  # the supervisor only; its children run on
    run.host()
    wait_for(lambda: stalled_id not in run.workers(), timeout=30, what="the reap")

    def took_after_the_reap() -> bool:
        pattern = run.key(f"inflight:{stalled_id}:*").replace("{", "\\{").replace("}", "\\}")
        return any(True for _ in run.client.scan_iter(match=pattern))

    wait_for(
        lambda: "lease ran out" in stalled.output() or took_after_the_reap(),
        what="the stalled host's children to try another take",
    )
    stalled.kill_host()
    run.finish(timeout=60)
