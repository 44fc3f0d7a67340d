"""The benchmark's two workloads, as plain functions every system can run.

``noop`` measures the system itself; ``burn`` is CPU-bound pure Python whose length the
benchmark calibrates to ~10 ms on the machine it runs on.
"""

from __future__ import annotations


def noop(x: object) -> object:
    return x


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total
