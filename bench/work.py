"""The benchmark's workloads, as plain functions every system can run.

``noop`` measures the system itself; ``burn`` is CPU-bound pure Python whose length the
benchmark calibrates to ~10 ms on the machine it runs on; ``sleep`` is the one slow task of
the head-of-line measurement.
"""

from __future__ import annotations

import time


def noop(x: object) -> object:
    return x


def burn(n: int) -> float:
    """Returns the CPU seconds it took where it ran: this VM's speed drifts by tens of percent
    within a minute, so the benchmark measures the work where it is done, not beforehand.
    CPU time of the thread, not wall time: in a threaded worker (Dramatiq's) wall time would
    count the waits for the GIL as work."""
    started = time.thread_time()
    total = 0
    for i in range(n):
        total += i * i
    return time.thread_time() - started


def sleep(seconds: float) -> float:
    """Holds its worker process for ``seconds`` without using the CPU. Returns the wall-clock
    time it ended (time.time()), so the benchmark can tell whether it was still running when
    other results had arrived."""
    time.sleep(seconds)
    return time.time()
