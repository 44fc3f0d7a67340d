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
_ROOT = "redpool:"

EVERY_PIPELINE = _ROOT + "{*}:*"
"""SCAN's MATCH pattern for the keys of every pipeline (braces are not special in Redis's
glob, and no pipeline name holds a character that is)."""


def pipeline_of(key: bytes | str) -> str | None:
    """The pipeline a key found with `EVERY_PIPELINE` belongs to: the name between the braces
    (without a shard's ``:k``), or None for a key that is not one of ours."""
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if not text.startswith(_ROOT + "{"):
        return None
    tag, closed, _ = text[len(_ROOT) + 1 :].partition("}:")
    name, colon, shard = tag.partition(":")
    if colon and not shard.isdigit():
        return None
    return name if closed and _NAME.fullmatch(name) else None


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
    SUNK = "sunk"
    """Every answer the sink acknowledged, strays pushed by hand included: with ``ok`` and
    ``failed``, what tells the workers how many results wait (their bound)."""
    RERUNS = "reruns"
    REPLIED = "replied"
    """Answers written to a caller's reply list (`Keys.replies`), not to ``results``: the
    sink never takes them, so the workers' results bound leaves them out."""
    """Of ``submitted``, the re-runs of dead tasks (``redpool dead retry``)."""


CLOSED = b"closed"
"""A producer's state in ``producers`` once it closed its part of the stream (while open,
its state is the number of its last batch)."""
ABORTED = b"aborted"
"""What the state of a producer that stopped on an error or a signal starts with:
``aborted: <why>``. Its submitted tasks still run; the run ends incomplete."""
ABANDONED = b"abandoned"
"""The state of a producer whose lease ran out (it died, or stalled that long)."""

RUNNING, COMPLETE, INCOMPLETE = "running", "complete", "incomplete"
"""A run's states (see run.lua): ended runs are complete when every producer closed."""
KEEP_RUN = 7 * 24 * 3600
"""Seconds an ended run's bookkeeping (run, stats, producers, pace; last-run) stays in Redis
when no next run starts."""


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


MAX_SHARDS = 64
"""Most shards a pipeline may have (``--shards``)."""


def check_shards(shards: int | None) -> int | None:
    """Refuse a number of shards out of 1..`MAX_SHARDS` (None: as the pipeline has)."""
    if shards is not None and not 1 <= shards <= MAX_SHARDS:
        raise SettingError("shards", f"must be 1..{MAX_SHARDS}, not {shards}")
    return shards


@dataclass(frozen=True)
class Keys:
    """Key names for one pipeline, or for shard ``shard`` of a sharded one.

    A pipeline of one shard (the default) keeps every key under ``redpool:{NAME}:``. A pipeline
    of K > 1 shards keeps shard k's keys under ``redpool:{NAME:k}:`` (each shard a hash tag of
    its own, so the shards hash to different slots and spread over a cluster's masters) and
    records its shards' numbers in ``redpool:{NAME}:shards`` (`shards`), the one key under
    the unsharded prefix. A shard is a whole pipeline of its own (queue, results, runs,
    leases): the first shard in the record is the *head*, whose run, sink lease and
    producers are the pipeline's (see `redpool.pipeline`)."""

    pipeline: str
    shard: int | None = None
    prefix: str = field(init=False)

    def __post_init__(self) -> None:
        check_pipeline_name(self.pipeline)
        object.__setattr__(self, "prefix", f"{_ROOT}{{{self.tag}}}:")

    @property
    def tag(self) -> str:
        """The hash tag: what Redis Cluster hashes every key of this (shard of the) pipeline
        by, so they are all in one slot."""
        return self.pipeline if self.shard is None else f"{self.pipeline}:{self.shard}"

    @property
    def shards(self) -> str:
        """String: the numbers of a sharded pipeline's shards, as a JSON list (``[0,2,5]``),
        written once when the pipeline is created; absent for a pipeline of one shard. Under
        the unsharded prefix whatever ``shard`` is."""
        return f"{_ROOT}{{{self.pipeline}}}:shards"

    @property
    def sync(self) -> str:
        """String written just before a ``WAIT`` (the ``replicas`` URL option): what the
        replicas acknowledge proves every write before it reached them."""
        return self.prefix + "sync"

    @property
    def every(self) -> str:
        """SCAN's MATCH pattern for every key of this pipeline (see `EVERY_PIPELINE`)."""
        return self.prefix + "*"

    @property
    def fixed(self) -> list[str]:
        """The keys whose names do not depend on a holder: what an EXISTS that must reach the
        pipeline's own slot (on a Redis Cluster node, its own node) asks about."""
        return [
            self.tasks,
            self.results,
            self.dead,
            self.delayed,
            self.stats,
            self.producers,
            self.workers,
            self.leases,
            self.pace,
            self.sinking,
            self.sink,
            self.callers,
        ]

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
        """Hash producer id -> last pushed batch number while open, else `CLOSED`, ``aborted:
        <why>`` or `ABANDONED`: the state of the current run's stream."""
        return self.prefix + "producers"

    @property
    def producer_leases(self) -> str:
        """Sorted set producer id -> lease expiry in ms (Redis clock), for open producers."""
        return self.prefix + "producer-leases"

    @property
    def run(self) -> str:
        """Hash of the current run: ``id``, ``state`` (`RUNNING`, `COMPLETE`, `INCOMPLETE`),
        ``started`` and ``ended`` (ms, Redis clock)."""
        return self.prefix + "run"

    @property
    def last_run(self) -> str:
        """String: the run before the current one, summed up as JSON (id, state, started,
        ended, stats, producers by state); expires `KEEP_RUN` after that run ended."""
        return self.prefix + "last-run"

    @property
    def outputs(self) -> str:
        """Hash absolute path of a sink's output file -> how many of its bytes hold
        acknowledged results: a restarted sink cuts the file back to that."""
        return self.prefix + "outputs"

    @property
    def workers(self) -> str:
        """Hash worker host id -> JSON self-description (host, pid, processes, lease, children,
        started, done), written at every heartbeat."""
        return self.prefix + "workers"

    @property
    def leases(self) -> str:
        """Sorted set worker host id -> lease expiry in ms (Redis clock). A child's take is
        fenced on its host's entry (fence.lua): a host reaped, or past its expiry, takes
        nothing, as its lists may already have been given back."""
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
    def callers(self) -> str:
        """Sorted set caller id -> lease expiry in ms (Redis clock): the live `redpool.Pool`
        and `redpool.Executor` objects, whose tasks' answers go to their own reply lists."""
        return self.prefix + "callers"

    def replies(self, caller: str) -> str:
        """List of the answers to caller ``caller``'s tasks (elements as in ``results``);
        workers RPUSH, the caller takes them with a fenced take into `replying`."""
        return f"{self.prefix}replies:{caller}"

    def replying(self, caller: str) -> str:
        """List of answers caller ``caller`` took and has not yet acknowledged."""
        return f"{self.prefix}replying:{caller}"

    @property
    def inflight_prefix(self) -> str:
        """What every in-flight list's name starts with."""
        return self.prefix + "inflight:"

    def inflight(self, worker_id: str, slot: int) -> str:
        """List of tasks that child ``slot`` of worker host ``worker_id`` holds right now.
        Reapers and `status` find these by SCAN (``inflight_prefix`` + ``*``), registered
        host or not: the host id is what is between the prefix and the last ``:``."""
        return f"{self.inflight_prefix}{worker_id}:{slot}"

    def held(self, holding: str) -> str:
        """String: the token of the take that filled ``holding`` (an inflight list, or
        ``sinking``), which its holder's settle is fenced on; "done:<token>" for 10 minutes
        after the settle, so one repeated after a lost reply knows it went through."""
        return f"{self.prefix}held:{holding.removeprefix(self.prefix)}"
