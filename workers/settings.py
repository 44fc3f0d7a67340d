"""What a worker host is told at start: a frozen settings object passed down, never globals."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from redpool.envelope import MAX_PAYLOAD
from redpool.keys import check_shards
from redpool.pipeline import MAX_BATCH
from redpool.settings import MAX_BLOCK, require, require_range


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker host behaves; where Redis is and which pipeline it serves are given beside
    it, as to every role."""

    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    exit_when_done: bool = False
    """Exit once the current run's stream is closed and nothing is left to run."""
    wait_for_run: bool = True
    """With ``exit_when_done``, started when no run has work for the workers (the last one
    is closed and idle, or none began): wait for the next run rather than exit at once."""
    max_results: int | None = 200_000
    """Take no new work while the results list holds more answers than this (a sink that
    stalled or never started must not fill Redis' memory); None for no bound."""
    lease: float = 15.0
    """Seconds a host stays presumed alive after its last heartbeat (renewed every lease/3)."""
    task_timeout: float | None = 600.0
    """Default for tasks without their own ``timeout``; None for no limit."""
    timeout_grace: float = 2.0
    """After a timeout, seconds a task gets to unwind before its process is killed."""
    max_tasks_per_child: int | None = None
    first_batch: int = 1
    """Tasks a new child takes at first, before it knows how long they take."""
    max_batch: int = 1000
    batch_seconds: float = 0.05
    """A child's batch is sized to take about this long: large for tiny tasks, one for long.
    Longer batches mean fewer commits and sink wake-ups, at the cost of at most one batch of
    idling at the end of a run (the README gives the measured trade-off)."""
    max_payload: int = MAX_PAYLOAD
    unknown_wait: float = 300.0
    """Seconds an element whose task name this host lacks is given back for another host
    (a rolling upgrade), counted from the first refusal; then it is dead. 0: dead at once."""
    tracebacks: bool = True
    """An error result carries the task's traceback, whose lines name this host's file paths
    (and may quote the failing line); False sends only the error's type and message."""
    block_seconds: float = 0.5
    """How long an idle child blocks on an empty queue before it looks at its stop flag."""

    shards: int | None = None
    """Shards of the pipeline (``--shards``): creates a pipeline of that many when there is
    none, and is refused when it has another number. None: as many as it has."""

    def __post_init__(self) -> None:
        require(self.processes >= 1, "processes", f"must be at least 1, not {self.processes}")
        check_shards(self.shards)
        require(self.lease >= 0.3, "lease", f"must be at least 0.3 s, not {self.lease:g}")
        require(
            self.task_timeout is None or self.task_timeout > 0,
            "task_timeout",
            f"must be > 0 s (or None for no limit), not {self.task_timeout}",
        )
        require(self.timeout_grace > 0, "timeout_grace", f"must be > 0 s, not {self.timeout_grace}")
        require(
            self.max_tasks_per_child is None or self.max_tasks_per_child >= 1,
            "max_tasks_per_child",
            f"must be at least 1, not {self.max_tasks_per_child}",
        )
        require(
            self.max_results is None or self.max_results >= 1,
            "max_results",
            f"must be at least 1 (or None for no bound), not {self.max_results}",
        )
        require_range("max_batch", self.max_batch, 1, MAX_BATCH)
        require_range("first_batch", self.first_batch, 1, self.max_batch)
        require(self.batch_seconds > 0, "batch_seconds", f"must be > 0, not {self.batch_seconds}")
        require(self.max_payload > 0, "max_payload", f"must be > 0, not {self.max_payload}")
        require(self.unknown_wait >= 0, "unknown_wait", f"must be >= 0 s, not {self.unknown_wait}")
        require(
            0 < self.block_seconds <= MAX_BLOCK,
            "block_seconds",
            f"must be in (0, {MAX_BLOCK:g}], not {self.block_seconds:g}",
        )
