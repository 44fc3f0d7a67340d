"""Every Redis key of a pipeline: the only module that spells the ``redpool:`` prefix.

The braces around the pipeline name are a Redis Cluster hash tag, so every key of one pipeline
hashes to one slot and the multi-key Lua scripts keep working on a cluster. The README's key
table mirrors this module; change both together, and only through an issue.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, field

from redpool.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


def check_pipeline_name(name: str) -> str:
    """Refuse names that would break the hash tag or the ``:``-separated layout."""
    if not _NAME.match(name):
        raise ConfigError(f"bad pipeline name {name!r}: use 1-100 letters, digits, '_', '-' or '.'")
    return name


def instance_id() -> str:
    """Who a producer, sink or worker host is: ``host-pid-random``; readable in redis-cli and
    unique even when a pid is reused. Worker host ids appear inside inflight key names."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Keys:
    """Key names for one pipeline."""

    pipeline: str
    prefix: str = field(init=False)

    def __post_init__(self) -> None:
        check_pipeline_name(self.pipeline)
        object.__setattr__(self, "prefix", f"redpool:{{{self.pipeline}}}:")

    @property
    def tasks(self) -> str:
        """List of task envelopes: producers RPUSH, workers take from the left."""
        return self.prefix + "tasks"

    @property
    def results(self) -> str:
        """List of result envelopes: workers RPUSH, the sink takes from the left."""
        return self.prefix + "results"

    @property
    def dead(self) -> str:
        """List of dead letters: tasks that failed for good, and payloads that are not tasks."""
        return self.prefix + "dead"

    @property
    def delayed(self) -> str:
        """Sorted set of task envelopes waiting for a retry; score = due time in ms."""
        return self.prefix + "delayed"

    @property
    def stats(self) -> str:
        """Hash of counters: submitted, drained, ok, failed, retried, requeued."""
        return self.prefix + "stats"

    @property
    def producers(self) -> str:
        """Hash producer id -> last pushed batch number, or ``closed``; the stream's state."""
        return self.prefix + "producers"

    @property
    def workers(self) -> str:
        """Hash supervisor id -> JSON description (host, pid, processes, heartbeat)."""
        return self.prefix + "workers"

    @property
    def leases(self) -> str:
        """Sorted set supervisor id -> lease expiry in ms (Redis clock)."""
        return self.prefix + "leases"

    @property
    def sinking(self) -> str:
        """List of results the sink took and has not yet acknowledged (one sink a pipeline)."""
        return self.prefix + "sinking"

    @property
    def sink(self) -> str:
        """String: the id of the sink draining this pipeline, with a lease (PX)."""
        return self.prefix + "sink"

    def inflight(self, worker_id: str, slot: int) -> str:
        """List of tasks that child ``slot`` of supervisor ``worker_id`` holds right now."""
        return f"{self.prefix}inflight:{worker_id}:{slot}"
