"""The workloads as redpool tasks (``--tasks bench.tasks``)."""

from __future__ import annotations

from bench import work
from redpool import task

noop = task(name="noop")(work.noop)
burn = task(name="burn")(work.burn)
sleep = task(name="sleep")(work.sleep)
