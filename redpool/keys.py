"""Every Redis key of a pipeline, its hash fields and markers: the only module that spells them.

The braces around the pipeline name are a Redis Cluster hash tag, so every key of one pipeline
hashes to one slot and the multi-key Lua scripts keep working on a cluster. The README's key
table mirrors this module; change both together, and only through an issue.
"""

from __future__ import annotations

import enum
import os
import re
import secrets
import socket
from dataclasses import dataclass, field

from redpool.errors import SettingError

DEFAULT_PIPELINE = "default"
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


class Stat(enum.StrEnum):
    """Fields of the ``stats`` hash: the counters Redis cannot derive from a list's length."""

    SUBMITTED = "submitted"
    """Tasks producers pushed: what the sink waits for."""
    OK = "ok"
    FAILED = "failed"
    RETRIED = "retried"
    REQUEUED = "requeued"
    """Tasks given back to the queue by a supervisor or a reaper."""
    DRAINED = "drained"
    """Results of submitted tasks the sink acknowledged."""


CLOSED = b"closed"
"""The value of a producer's field in ``producers`` once it closed its part of the stream."""


def check_pipeline_name(name: str) -> str:
    """Refuse names that would break the hash tag or the ``:``-separated layout."""
    if not _NAME.fullmatch(name):
        raise SettingError(
            "pipeline", f"name {name!r} is not allowed: use 1-100 letters, digits, '_', '-' or '.'"
        )
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
        """Hash of counters, fields named by `Stat`."""
        return self.prefix + "stats"

    @property
    def producers(self) -> str:
        """Hash producer id -> last pushed batch number, or `CLOSED`: the stream's state."""
        return self.prefix + "producers"

    @property
    def workers(self) -> str:
        """Hash worker host id -> JSON self-description (host, pid, processes, lease, children,
        started), written at every heartbeat."""
        return self.prefix + "workers"

    @property
    def leases(self) -> str:
        """Sorted set worker host id -> lease expiry in ms (Redis clock)."""
        return self.prefix + "leases"

    @property
    def pace(self) -> str:
        """Hash task name -> microseconds per task, as the workers last measured it: what
        producers size their chunks by."""
        return self.prefix + "pace"

    @property
    def sinking(self) -> str:
        """List of results the sink took and has not yet acknowledged (one sink a pipeline)."""
        return self.prefix + "sinking"

    @property
    def sink(self) -> str:
        """String: the id of the sink draining this pipeline, with a lease (PX)."""
        return self.prefix + "sink"

    @property
    def inflight_prefix(self) -> str:
        """What every in-flight list's name starts with."""
        return self.prefix + "inflight:"

    def inflight(self, worker_id: str, slot: int) -> str:
        """List of tasks that child ``slot`` of worker host ``worker_id`` holds right now."""
        return f"{self.inflight_prefix}{worker_id}:{slot}"

    def held(self, holding: str) -> str:
        """String: the token of the take that filled ``holding`` (an inflight list, or
        ``sinking``), which its holder's settle is fenced on; "done:<token>" for 10 minutes
        after the settle, so one repeated after a lost reply knows it went through."""
        return f"{self.prefix}held:{holding.removeprefix(self.prefix)}"
