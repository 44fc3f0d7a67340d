"""`Pipeline`: the one object the roles talk to Redis through, for a pipeline of one shard or
of many.

A pipeline of K shards (``--shards K``, fixed when it is created and recorded in Redis) is K
`Shard`s, each a whole pipeline in a slot of its own (see `Keys`), so on a Redis
Cluster they spread over the masters and one pipeline is served by all of them. K = 1 is one
shard under the plain prefix, exactly the layout of an unsharded pipeline. Here is how the
shards make one pipeline:

- producers spread their batches over the shards (by batch number); a `redpool.Pool` caller
  keeps to one shard (by its id), where its answers come back;
- each worker child takes from its home shard first, then from the others, so no shard waits
  while workers idle; a worker host holds a lease on every shard (each take is fenced on it),
  and reaps each shard;
- the sink drains every shard; its lease is the head's (the first shard in the record);
- a run is the head's: a producer joins the head, then follows the head's run on every other
  shard, and leaves them before it leaves the head. The sink ends a run once every producer
  left the head, every other shard's part ended, and no producer joined the head meanwhile
  (`finish_run`);
- counts (`snapshot`, backlog, results waiting, dead letters) are summed over the shards.
"""

from __future__ import annotations

import copy
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson
import redis
import redis.cluster

from redpool import deadletters, state
from redpool import holding as holding_list
from redpool.answers import Outcome
from redpool.cluster import Topology, spread, topology
from redpool.connection import connect, never, require_noeviction, same_replicas, waiting
from redpool.errors import ConfigError
from redpool.keys import ABORTED, CLOSED, RUNNING, Keys, instance_id
from redpool.settings import RedisSettings
from redpool.shard import FOREVER, Returned, Shard, Sort
from redpool.shard import MAX_BATCH as MAX_BATCH

RedisTarget = str | RedisSettings | redis.Redis | redis.cluster.RedisCluster | None
"""What the API's ``redis=`` argument takes: a URL, settings, a client (of one Redis, of any
node of a Redis Cluster, or redis-py's ``RedisCluster``), or None (the default URL)."""

__all__ = ["MAX_BATCH", "Pipeline", "RedisTarget", "Returned", "Sort"]


DRY = 0.25
"""Seconds a shard one of this process's takes found empty is passed over by the next ones
(while another shard has work; when none has, a take waits on each in turn)."""


class Pipeline:
    """A pipeline: its shards, and what each role asks of them."""

    def __init__(
        self,
        where: Topology | redis.Redis,
        name: str,
        shards: Sequence[int | None] = (None,),
        *,
        log: logging.Logger | None = None,
        abort: Callable[[], bool] = never,
    ) -> None:
        where = where if isinstance(where, Topology) else Topology(where)
        self.topology = where
        self.name = name
        self.shards = [self._shard(where, Keys(name, k), log, abort) for k in shards]
        self.head = self.shards[0]
        self.sharded = len(self.shards) > 1
        self.where = self.head.where
        """Where Redis is, for messages: a URL without its password."""
        self._owned = False
        self._turn = 0
        self._dry = [0.0] * len(self.shards)
        """Per shard: time.monotonic() until which this process's takes pass it over."""
        self._sinking = 0
        """The shard the sink last took results from: where it looks first."""

    @staticmethod
    def _shard(
        where: Topology, keys: Keys, log: logging.Logger | None, abort: Callable[[], bool]
    ) -> Shard:
        client = where.client(keys.tag)
        same_replicas(client, where.base)
        reroute = (lambda: where.reroute(client, keys.tag)) if where.cluster else None
        return Shard(client, keys, log=log, abort=abort, reroute=reroute)

    @classmethod
    def connect(
        cls,
        target: RedisTarget,
        name: str,
        *,
        log: logging.Logger | None = None,
        abort: Callable[[], bool] = never,
        writes: bool = True,
        shards: int | None = None,
    ) -> Pipeline:
        """Connect (waiting up to the settings' ``wait`` for Redis), or use a given client,
        and find the pipeline's shards in Redis; ``shards`` (K) creates a pipeline of K
        shards when there is none, and is refused when the pipeline has another number.

        A role that ``writes`` refuses a Redis that evicts keys (`require_noeviction`); a
        look (status, dead list) goes on, to show what is there."""
        pipe = cls.open(topology_for(target), name, log=log, abort=abort, shards=shards)
        pipe._owned = not isinstance(target, redis.Redis | redis.cluster.RedisCluster)
        if writes:  # each shard's node, through the shard's own retry (a node down waits)
            for shard in pipe.shards:
                shard._call(require_noeviction, shard.client)
        return pipe

    @classmethod
    def open(
        cls,
        where: Topology,
        name: str,
        *,
        log: logging.Logger | None = None,
        abort: Callable[[], bool] = never,
        shards: int | None = None,
    ) -> Pipeline:
        """Pipeline ``name`` on ``where``, its shards as Redis records them (see `connect`)."""
        found = cls.recorded(where, name, log)
        if found is None and shards is not None and shards > 1:
            found = cls._create(where, name, shards, log)
        numbers: list[int | None] = list(found) if found else [None]
        if shards is not None and shards != len(numbers):
            raise ConfigError(
                f"pipeline {name!r} has {len(numbers)} shard(s), fixed when it was created: "
                f"drop --shards (or give {len(numbers)}), or use another pipeline name"
            )
        return cls(where, name, numbers, log=log, abort=abort)

    @staticmethod
    def recorded(where: Topology, name: str, log: logging.Logger | None = None) -> list[int] | None:
        """The shard numbers pipeline ``name`` records, or None (one shard)."""
        return _record(Pipeline._shard(where, Keys(name), log, never))

    @classmethod
    def _create(
        cls, where: Topology, name: str, count: int, log: logging.Logger | None
    ) -> list[int]:
        """Record ``count`` shards for a new pipeline (SET NX: when two roles create it at
        once, both use the record that won). A pipeline with keys of one shard is not turned
        into a sharded one under its running roles."""
        keys = Keys(name)
        plain = cls._shard(where, keys, log, never)
        if plain.exists(besides=[keys.shards, keys.sync]):  # another role creating it now
            raise ConfigError(
                f"pipeline {name!r} exists with one shard (its hosts or sink may be running): "
                "use another name for a sharded pipeline, or `redpool purge` it first"
            )
        numbers = spread(name, count, where.owner())
        plain._call(plain.client.set, keys.shards, orjson.dumps(numbers), nx=True)
        found = cls.recorded(where, name, log)
        assert found is not None
        return found

    def check_layout(self) -> None:
        """Raise ConfigError when this pipeline, opened with one shard, has been created with
        more since (a role with ``--shards`` found no key of it yet): this role would go on
        using a layout nobody else does. Read by long-running roles now and then."""
        if self.sharded:
            return
        found = _record(self.head)  # an unsharded pipeline's head has the plain name's keys
        if found:
            raise ConfigError(
                f"pipeline {self.name!r} was created with {len(found)} shards after this role "
                "started: start it again"
            )

    def disconnect(self) -> None:
        """Close the connections of a client this object made (never one it was given)."""
        if self._owned:
            self.topology.close()

    def impatient(self) -> Pipeline:
        """The same pipeline with a retry policy that gives up at once: for a hard stop, where
        waiting for Redis would be waiting for ever."""
        other = copy.copy(self)
        other.shards = [s.impatient() for s in self.shards]
        other.head = other.shards[0]
        return other

    def away_for(self) -> float:
        """Seconds the longest outage a call of this pipeline is riding out has lasted."""
        return max(s.away_for() for s in self.shards)

    def shard_of(self, key: str) -> Shard:
        """The shard a key (a holding list's name) belongs to."""
        for shard in self.shards:
            if key.startswith(shard.keys.prefix):
                return shard
        raise ValueError(f"{key!r} is not a key of pipeline {self.name!r}")

    def _others(self) -> list[Shard]:
        return self.shards[1:]

    # -- producers ---------------------------------------------------------------------------

    def join(self, producer: str, lease: float) -> tuple[int, bool]:
        """A producer joins the current run, or starts the next (see `Shard.join`): the
        head's, then the same run on every other shard."""
        run, started = self.head.join(producer, lease, sharded=self.sharded)
        for shard in self._others():
            shard.join(producer, lease, follow=run, sharded=True)
        return run, started

    def joined(self, producer: str) -> bool:
        return self.head.joined(producer)

    def push(
        self,
        producer: str,
        batch: int,
        elements: Sequence[bytes],
        tasks: int,
        name: str,
        lease: float,
    ) -> tuple[int, float | None]:
        """A producer's numbered batch to one shard (by its number: batches spread evenly,
        and a batch tried again goes where its first try went). Returns the backlog (the
        shard's, times the shards: an estimate, for backpressure) and the task's pace."""
        shard = self.shards[batch % len(self.shards)]
        backlog, pace = shard.push(producer, batch, elements, tasks, name, lease)
        return backlog * len(self.shards), pace

    def renew(self, producer: str, lease: float) -> bool:
        """Renew a producer's lease on every shard; False once it is not open on one."""
        return all([shard.renew(producer, lease) for shard in self.shards])

    def leave(self, producer: str, state: bytes) -> bool:
        """A producer leaves the run with ``state`` on every shard, the head last (see
        `finish_run`); False when it had left the head already or is not in the run."""
        for shard in self._others():
            shard.leave(producer, state)
        return self.head.leave(producer, state)

    def close(self, producer: str) -> bool:
        """End a producer's part of the stream: it submitted all it meant to (idempotent)."""
        return self.leave(producer, CLOSED)

    def abort(self, producer: str, why: str) -> bool:
        """End a producer's part of the stream short: its tasks still run, and the run ends
        incomplete (idempotent)."""
        return self.leave(producer, ABORTED + b": " + why.encode()[:500])

    def expire_producers(self) -> list[str]:
        """Call each producer whose lease ran out abandoned, shard by shard (the head last,
        so a run never ends on the head while a shard still waits for the producer)."""
        gone: set[str] = set()
        for shard in [*self._others(), self.head]:
            gone.update(shard.expire_producers())
        return sorted(gone)

    def finish_run(self, run: int) -> str:
        """Mark run ``run`` ended once it is over on every shard; returns its state.

        A producer pushes only to shards it joined, joins the head before any other, and
        leaves the head after every other. So: when every producer the head knows has left,
        and then every other shard's part of the run has ended (each drained), the run is
        over, unless a producer joined the head since the count was taken; the head's own
        finish checks that count in the same script that ends the run."""
        if not self.sharded:
            return self.head.finish_run(run)
        head = self.head.producer_states()
        if not head or any(p.isdigit() for p in head.values()) or self.head.run_id() != run:
            return RUNNING
        # A shard at another run holds nothing of this one (a producer that died between
        # joining the head and following it there): its part is empty, and over.
        others = [shard for shard in self._others() if shard.run_id() == run]
        for shard in others:
            self._left_as_on_the_head(shard, head)
        states = [shard.finish_run(run) for shard in others]
        if RUNNING in states:
            return RUNNING
        incomplete = any(s != "complete" for s in states)
        return self.head.finish_run(run, producers=len(head), incomplete=incomplete)

    @staticmethod
    def _left_as_on_the_head(shard: Shard, head: dict[str, bytes]) -> None:
        """A producer that left the head but is still open on ``shard`` leaves it too, as it
        left the head: the head's word is final. (Called abandoned on the head but not here,
        where a reaper's outage had just ended; closed by hand between its head join and its
        follow.) Without this the run would wait on that shard for ever."""
        for producer, here in shard.producer_states().items():
            left = head.get(producer)
            if here.isdigit() and left is not None and not left.isdigit():
                shard.leave(producer, left)

    def backlog(self) -> int:
        return sum(shard.backlog() for shard in self.shards)

    # -- workers -----------------------------------------------------------------------------

    def inflight(self, host: str, index: int) -> list[str]:
        """The in-flight lists of child ``index`` of worker host ``host``, one per shard."""
        return [shard.keys.inflight(host, index) for shard in self.shards]

    def take(self, host: str, index: int, count: int, block: float | None) -> holding_list.Taken:
        """Up to ``count`` tasks for child ``index`` of ``host`` (see `Shard.take`): from its
        home shard, else from the next that has any (see `_first`). `Taken.holding` says
        which in-flight list holds them."""

        def attempt(shard: Shard, wait: float | None) -> holding_list.Taken:
            holding = shard.keys.inflight(host, index)
            return replace(shard.take(holding, count, wait, host), holding=holding)

        return self._first(index + zlib.crc32(host.encode()), attempt, block)

    def _first(
        self,
        start: int,
        attempt: Callable[[Shard, float | None], holding_list.Taken],
        block: float | None,
    ) -> holding_list.Taken:
        """``attempt`` (a take that does not wait) on each shard from the ``start``-th on,
        until one yields; a shard that yielded nothing is passed over for `DRY` seconds. When
        none yields, wait ``block`` seconds, shared out, on one shard, a different one each
        time, so a process wakes for work on any shard. On one shard: a plain take.

        A take that finds nothing costs Redis about as much as one that moves a batch (a
        transaction of a few commands), so a sharded pipeline whose processes looked at
        every empty shard before each take would spend most of its Redis time looking."""
        count = len(self.shards)
        if count == 1:
            return attempt(self.head, block)
        now = time.monotonic()
        for step in range(count):
            k = (start + step) % count
            if self._dry[k] > now:
                continue
            taken = attempt(self.shards[k], None)
            if taken.held or not taken.leased:
                return taken
            self._dry[k] = now + DRY
        self._turn += 1
        k = (start + self._turn) % count
        taken = attempt(self.shards[k], None if block is None else block / count)
        if taken.held:
            self._dry[k] = 0.0
        return taken

    def commit(self, holding: str, taken: holding_list.Taken, held: int, outcome: Outcome) -> int:
        return self.shard_of(holding).commit(holding, taken, held, outcome)

    def give_back(self, holding: str, sort: Sort) -> Returned:
        return self.shard_of(holding).give_back(holding, sort)

    def held(self, holding: str) -> list[bytes]:
        return self.shard_of(holding).held(holding)

    def cut(self, holding: str, position: int) -> list[bytes] | None:
        return self.shard_of(holding).cut(holding, position)

    def heartbeat(self, worker: str, lease: float, description: dict[str, Any]) -> int:
        """Renew a worker host's lease on every shard; returns the Redis time (the head's)."""
        now = self.head.heartbeat(worker, lease, description)
        for shard in self._others():
            shard.heartbeat(worker, lease, description)
        return now

    def forget(self, worker: str, expiry: int = FOREVER) -> bool:
        """Drop a worker host's registration on every shard (see `Shard.forget`)."""
        return any([shard.forget(worker, expiry) for shard in self.shards])

    def reap(
        self, sort_for: Callable[[str], Sort], sweep: bool = True
    ) -> list[tuple[str, Returned]]:
        return [r for shard in self.shards for r in shard.reap(sort_for, sweep)]

    def promote(self, limit: int = 500) -> int:
        return sum(shard.promote(limit) for shard in self.shards)

    def workers(self) -> dict[str, dict[str, Any]]:
        return self.head.workers()

    def results_waiting(self) -> int:
        return sum(shard.results_waiting() for shard in self.shards)

    # -- callers (redpool.Pool, redpool.Executor): each keeps to one shard -------------------

    def caller_shard(self, caller: str) -> Shard:
        """The shard a caller pushes its tasks to and takes its answers from."""
        return self.shards[zlib.crc32(caller.encode()) % len(self.shards)]

    def live_callers(self) -> list[str]:
        return [c for shard in self.shards for c in shard.live_callers()]

    def expire_callers(self) -> list[str]:
        return [c for shard in self.shards for c in shard.expire_callers()]

    def callers(self) -> dict[str, tuple[float, int]]:
        return {c: v for shard in self.shards for c, v in shard.callers().items()}

    # -- the sink ----------------------------------------------------------------------------

    def lease(self, holder: str, seconds: float) -> bool:
        return self.head.lease(holder, seconds)

    def release(self, holder: str) -> None:
        self.head.release(holder)

    def take_results(self, count: int, block: float | None) -> holding_list.Taken:
        """Up to ``count`` results of one shard into its ``sinking`` list (see
        `Shard.take_results`): from the shard that yielded last, else the next that has any
        (see `_first`)."""

        def attempt(shard: Shard, wait: float | None) -> holding_list.Taken:
            taken = replace(shard.take_results(count, wait), holding=shard.keys.sinking)
            if taken.held:
                self._sinking = self.shards.index(shard)
            return taken

        return self._first(self._sinking, attempt, block)

    def ack(
        self,
        taken: holding_list.Taken,
        counted: int,
        sunk: int,
        mark: tuple[str, int] | None = None,
    ) -> int:
        return self.shard_of(taken.holding).ack(taken, counted, sunk, mark)

    def output_mark(self, name: str) -> int | None:
        """Bytes of output ``name`` that hold acknowledged results: the furthest mark of any
        shard (the sink acks one batch at a time, so every batch before the furthest was
        acknowledged too)."""
        marks = [m for m in (shard.output_mark(name) for shard in self.shards) if m is not None]
        return max(marks) if marks else None

    def record_output(self, name: str, mark: int) -> None:
        """Record where output ``name``'s acknowledged results end on every shard (a file
        emptied in place must not keep an old, larger mark on one of them)."""
        for shard in self.shards:
            shard.record_output(name, mark)

    # -- status, dead letters, purge ---------------------------------------------------------

    def exists(self) -> bool:
        return any(shard.exists() for shard in self.shards)

    def snapshot(self, count_tasks: bool = False, every_holder: bool = False) -> state.Snapshot:
        """Every shard's snapshot, summed (runs, producers and hosts as the head has them)."""
        parts = [shard.snapshot(count_tasks, every_holder) for shard in self.shards]
        return state.summed(parts)

    def dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        letters: list[dict[str, Any]] = []
        for shard in self.shards:
            letters += shard.dead_letters(limit - len(letters) if limit else 0)
            if limit and len(letters) >= limit:
                break
        return letters

    def dead_count(self) -> int:
        return sum(shard.dead_count() for shard in self.shards)

    def retry_dead(
        self, chosen: deadletters.Selection = deadletters.EVERY, lease: float = 30.0
    ) -> deadletters.RetryReport:
        """The chosen dead tasks back to the queue as re-runs (see `deadletters.retry`).

        A re-run is a producer of the run: it joins (starting the next run when the last one
        ended), moves the tasks, and closes, so the run's sink waits for their results and a
        run does not end with re-runs still going."""
        if not any(shard.has_dead(chosen) for shard in self.shards):
            return deadletters.RetryReport(0, 0)
        producer = f"rerun-{instance_id()}"
        self.join(producer, lease)
        try:
            reports = [shard.rerun(chosen, producer) for shard in self.shards]
        except BaseException:
            self.abort(producer, "dead retry failed")
            raise
        self.close(producer)
        return deadletters.RetryReport(
            sum(r.retried for r in reports),
            sum(r.kept for r in reports),
            sum(r.submitted for r in reports),
        )

    def purge_dead(self, chosen: deadletters.Selection = deadletters.EVERY) -> int:
        return sum(shard.purge_dead(chosen) for shard in self.shards)

    def purge(self) -> int:
        """Delete every key of the pipeline: the other shards, then the head (a purge cut
        short leaves a head whose run the others follow), then its record of shards (in the
        slot of the plain name, on whichever node serves it)."""
        gone = sum(shard.purge() for shard in [*self._others(), self.head])
        if self.sharded:
            keys = Keys(self.name)
            plain = self._shard(self.topology, keys, None, never)
            gone += int(plain._outage.run(lambda: plain.client.unlink(keys.shards), writes=False))
        return gone


def _record(plain: Shard) -> list[int] | None:
    """The shard numbers in ``plain``'s `Keys.shards` (a shard of the plain name), or None."""
    raw = plain._read(plain.client.get, plain.keys.shards)
    if raw is None:
        return None
    try:
        numbers = orjson.loads(raw)
        if isinstance(numbers, list) and all(type(n) is int and n >= 0 for n in numbers):
            return numbers
    except orjson.JSONDecodeError:
        pass
    raise ConfigError(
        f"pipeline {plain.name!r}: {plain.keys.shards} holds {raw!r}, not a list of shards"
    )


def topology_for(target: RedisTarget) -> Topology:
    """The API's ``redis=`` argument as a `Topology`: connect (waiting up to the settings'
    ``wait`` for Redis), or use the client given, and find out whether it is a cluster."""
    if isinstance(target, redis.cluster.RedisCluster):
        return topology(target)
    settings = RedisSettings.of(None if isinstance(target, redis.Redis) else target)
    client = target if isinstance(target, redis.Redis) else connect(settings)
    # a cluster master down (a failover under way): wait as for an unreachable Redis
    return waiting(settings, client, lambda: topology(client))


def client_for(target: RedisTarget) -> redis.Redis:
    """A client of one Redis (or of a cluster node) for ``target``: what `Catalog` scans."""
    return topology_for(target).base
