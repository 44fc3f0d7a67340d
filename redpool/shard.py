"""`Shard`: what talks to Redis for one pipeline in one slot (all of an unsharded pipeline,
or one shard of a sharded one; `redpool.pipeline.Pipeline` holds the shards).

It owns the shard's keys, its scripts and its retry policy, and has a typed method for every
operation of the wire contract. Each method that runs a script builds that script's KEYS and
ARGV in the order its Lua header gives; nothing else in redpool builds them or touches a
contract key with a raw command. Every method rides out a Redis outage (`Outage`): each call
is idempotent or fenced, so repeating it after a lost reply is safe.
"""

from __future__ import annotations

import copy
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.client import Pipeline as Transaction

from redpool import codec, deadletters, state
from redpool import holding as holding_list
from redpool.answers import Outcome
from redpool.connection import (
    OOM,
    Outage,
    address,
    never,
    redis_ms,
)
from redpool.envelope import split_at, tasks_in
from redpool.errors import RedisRefused, RedpoolError, StreamClosed
from redpool.keys import ABANDONED, KEEP_RUN, Keys, Stat
from redpool.scripts import MAX_BATCH as MAX_BATCH
from redpool.scripts import Scripts

FOREVER = 2**62
"""A lease expiry no lease reaches: `forget` with it drops a host whatever its lease says."""

COUNTED = 1000
"""Elements of a list snapshot.lua reads to count its tasks (status only; a read costs Redis
time in proportion to the bytes read)."""

REPLY_TTL = 600
"""Seconds a reply list lives after its last answer: the answers to a caller that died (and
whose cleanup came before them) do not stay in Redis."""

OUTAGE_GRACE = 10.0
"""Seconds after an outage (or a Redis restart) in which no producer is called abandoned:
what a producer retrying with backoff (2 s at most between tries) needs to renew its lease."""

Sort = Callable[[list[bytes]], "Returned"]
"""Says, for the tasks a holder held, which go back to the queue and which are dead."""


@dataclass(frozen=True)
class Returned:
    """How a holder's tasks come back: some to the queue, some answered and dead for good."""

    back: list[bytes] = field(default_factory=list)
    """Back to the head of the queue, in their order."""
    results: list[bytes] = field(default_factory=list)
    replies: dict[str, list[bytes]] = field(default_factory=dict)
    """Caller id -> error answers for its reply list (tasks of a `redpool.Pool`)."""
    dead: list[bytes] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Tasks that left the holder (every dead one has a dead letter)."""
        return _tasks(self.back) + len(self.dead)

    def extend(self, other: Returned) -> None:
        self.back.extend(other.back)
        self.results.extend(other.results)
        for caller, answers in other.replies.items():
            self.replies.setdefault(caller, []).extend(answers)
        self.dead.extend(other.dead)


class Shard:
    """One pipeline (or one shard of a sharded one) in one slot of one Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        log: logging.Logger | None = None,
        abort: Callable[[], bool] = never,
        reroute: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.name = keys.pipeline
        self._scripts = Scripts.register(client)
        self._now = 0
        self.where = address(client)
        """Where this Redis is, for messages: a URL without its password."""
        log = log or logging.getLogger("redpool")
        self._outage = Outage(
            log,
            abort,
            where=self.where,
            pipeline=self.name,
            client=client,
            reroute=reroute,
            sync_key=keys.sync,
        )

    def impatient(self) -> Shard:
        """The same pipeline with a retry policy that gives up at once: for a hard stop, where
        waiting for Redis would be waiting for ever."""
        other = copy.copy(self)
        other._outage = copy.copy(self._outage)
        other._outage.abort = lambda: True
        return other

    def away_for(self) -> float:
        """Seconds the outage a call of this pipeline is riding out has lasted (0: none)."""
        since = self._outage.away_since
        return 0.0 if since is None else time.monotonic() - since

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A call that writes: with ``?replicas=N``, it returns once N replicas have it."""
        return self._outage.call(fn, *args, **kwargs)

    def _read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A call that only reads: it waits for no replica."""
        return self._outage.read(fn, *args, **kwargs)

    def _freeing(self, fn: Callable[[], Any], when_full: Callable[[], Any]) -> Any:
        """``fn()``, or ``when_full()`` (a script allowed to run then) when Redis refuses it for
        want of memory: for the sink, which frees memory and so must run when Redis is full."""
        try:
            return self._outage.run(fn, wait_for_memory=False)
        except OOM:
            return self._outage.run(when_full)

    # -- producers ---------------------------------------------------------------------------

    def join(
        self, producer: str, lease: float, follow: int | None = None, sharded: bool = False
    ) -> tuple[int, bool]:
        """run.lua: a producer joins the current run, or starts the next when the last one
        ended (or there was none); with ``follow`` (a sharded pipeline's other shards), it
        joins that run, the head's, which this shard starts or opens again if it must. From
        now on the stream stays open until it leaves (it closes, aborts, or its lease of
        ``lease`` seconds runs out). Returns (the run's id, whether this join started it)."""
        mode, head = ("join", "") if follow is None else ("follow", str(follow))
        args = [mode, producer, int(lease * 1000), KEEP_RUN * 1000, head, int(sharded)]
        run, started = self._call(self._scripts.run, keys=self._run_keys(), args=args)
        return int(run), bool(started)

    def joined(self, producer: str) -> bool:
        """Whether ``producer`` joined the current run (in any state since): only the results
        of those count toward the end of its stream."""
        return bool(self._read(self.client.hexists, self.keys.producers, producer))

    def finish_run(self, run: int, producers: int | None = None, incomplete: bool = False) -> str:
        """run.lua: mark run ``run`` ended if every producer left and every submitted task's
        result was drained; returns its state (`RUNNING` while it is not, or not current).

        A sharded pipeline's head ends its run only while it has ``producers`` producers (the
        number when the sink found the other shards drained), and ``incomplete`` when another
        shard's part ended so."""
        count = "" if producers is None else str(producers)
        args = ["finish", run, count, KEEP_RUN * 1000, "incomplete" if incomplete else "", 0]
        state = self._call(self._scripts.run, keys=self._run_keys(), args=args)
        return cast(bytes, state).decode()

    def run_id(self) -> int | None:
        """The current run's id (None before any)."""
        raw = self._read(self.client.hget, self.keys.run, "id")
        return None if raw is None else int(cast(bytes, raw))

    def producer_states(self) -> dict[str, bytes]:
        """Producer id -> its state in the current run (see `Keys.producers`)."""
        raw = cast(dict[bytes, bytes], self._read(self.client.hgetall, self.keys.producers))
        return {producer.decode(): state for producer, state in raw.items()}

    def _run_keys(self) -> list[str]:
        k = self.keys
        return [k.run, k.producers, k.producer_leases, k.stats, k.last_run, k.pace]

    def push(
        self,
        producer: str,
        batch: int,
        elements: Sequence[bytes],
        tasks: int,
        name: str,
        lease: float,
    ) -> tuple[int, float | None]:
        """push.lua: a producer's numbered batch, exactly once; renews its lease. Returns the
        queue's length in elements (for backpressure) and the microseconds per task workers
        last measured for ``name``, if any (for sizing chunks). Raises StreamClosed when the
        producer is not open in the current run (it left, or was called abandoned)."""
        k = self.keys
        keys = [k.tasks, k.producers, k.stats, k.pace, k.producer_leases]
        args = [producer, batch, tasks, name, int(lease * 1000), *elements]
        try:
            backlog, pace = self._call(self._scripts.push, keys=keys, args=args)
        except RedisRefused as exc:
            if exc.reply.startswith("STREAMCLOSED"):
                raise StreamClosed(exc.reply.split(" ", 1)[1]) from None
            raise
        return int(backlog), float(pace) if pace is not None else None

    def renew(self, producer: str, lease: float) -> bool:
        """renew.lua: a producer's heartbeat; False once it is no longer open in the run."""
        keys = [self.keys.producers, self.keys.producer_leases]
        args = [producer, int(lease * 1000)]
        return bool(self._call(self._scripts.renew, keys=keys, args=args))

    def leave(self, producer: str, state: bytes, only_if_expired: bool = False) -> bool:
        """leave.lua: an open producer leaves the run with ``state`` (`CLOSED`, ``aborted:
        <why>`` or `ABANDONED`); False when it had left already or is not in the run."""
        keys = [self.keys.producers, self.keys.producer_leases]
        args = [producer, state, "1" if only_if_expired else "0"]
        return bool(self._call(self._scripts.leave, keys=keys, args=args))

    def expire_producers(self) -> list[str]:
        """Call every open producer whose lease ran out abandoned; returns their ids.

        Not within `OUTAGE_GRACE` seconds of an outage, this caller's or Redis' own (a
        restart): every lease may have run out while Redis was away, and the producers,
        alive, are reconnecting as this caller did; they renew within a few seconds."""
        expired = self._lapsed(self.keys.producer_leases)
        if not expired or self._recovering():
            return []
        return [p for p in expired if self.leave(p, ABANDONED, True)]

    def _lapsed(self, leases: str) -> list[str]:
        """Who in the zset ``leases`` (id -> expiry, ms) has a lease run out, by Redis' clock."""
        now = redis_ms(self._read(self.client.time))
        ids = self._read(self.client.zrangebyscore, leases, "-inf", now)
        return [raw.decode() for raw in cast(list[bytes], ids)]

    def _outage_just_ended(self) -> bool:
        """This caller rode out an outage less than `OUTAGE_GRACE` seconds ago."""
        return time.monotonic() - self._outage.back_at < OUTAGE_GRACE

    def _recovering(self) -> bool:
        if self._outage_just_ended():
            return True
        try:
            info = cast(dict[str, Any], self._read(self.client.info, "server"))
        except RedpoolError:  # INFO not allowed (an ACL): the outage check alone
            return False
        return int(info.get("uptime_in_seconds", OUTAGE_GRACE)) < OUTAGE_GRACE

    def backlog(self) -> int:
        """Tasks waiting to be taken."""
        return int(self._read(self.client.llen, self.keys.tasks))

    # -- workers -----------------------------------------------------------------------------

    def take(self, holding: str, count: int, block: float | None, host: str) -> holding_list.Taken:
        """Up to ``count`` elements of the queue into ``holding`` (see `redpool.holding`);
        with ``block`` (seconds), wait that long for one when the queue is empty. Fenced on
        the lease of worker host ``host``: once it ran out, nothing is taken and the result
        says so (`Taken.leased`), as a reaper may already have emptied the host's lists."""
        source, many = self.keys.tasks, self._scripts.take
        lease = holding_list.Lease(host, self._scripts.fence)
        taken = self._call(
            holding_list.take, self.client, self.keys, source, holding, count, block, many, lease
        )
        return cast(holding_list.Taken, taken)

    def commit(self, holding: str, taken: holding_list.Taken, held: int, outcome: Outcome) -> int:
        """A worker child's batch, settled: answers, dead letters and retries, the tasks it
        did not start back to the head of the queue, the time per task it measured, and the
        removal of its ``held`` elements from ``holding``, all in one transaction.

        Returns 1 when written, 2 when this very commit had already been written (a reply
        lost to a dropped connection), 0 when the batch was given back meanwhile (fenced)."""
        k = self.keys

        def write(pipe: Transaction) -> None:
            if outcome.results:
                pipe.rpush(k.results, *outcome.results)
            if outcome.replied:
                self._reply(pipe, outcome.replies, outcome.replied)
            if outcome.dead:
                pipe.rpush(k.dead, *outcome.dead)
            if outcome.retries:
                now = self._now
                pipe.zadd(k.delayed, {payload: now + delay for delay, payload in outcome.retries})
                pipe.hincrby(k.stats, Stat.RETRIED, len(outcome.retries))
            if outcome.back:
                pipe.lpush(k.tasks, *reversed(outcome.back))
            if outcome.later:
                pipe.zadd(
                    k.delayed, {element: self._now + delay for delay, element in outcome.later}
                )
                pipe.hincrby(k.stats, Stat.REQUEUED, _tasks([e for _, e in outcome.later]))
            if outcome.pace:
                pipe.hset(k.pace, mapping={n: round(us, 3) for n, us in outcome.pace.items()})
            if outcome.ok:
                pipe.hincrby(k.stats, Stat.OK, outcome.ok)
            if outcome.failed:
                pipe.hincrby(k.stats, Stat.FAILED, outcome.failed)

        if outcome.retries or outcome.later:
            self._now = redis_ms(self._call(self.client.time))
        settle = holding_list.settle
        fence = self._scripts.holder
        return int(self._call(settle, self.client, k, holding, taken, held, write, fence))

    def _reply(self, pipe: Transaction, replies: dict[str, list[bytes]], replied: int) -> None:
        """Answers to callers' tasks into their reply lists, in a commit's or a give-back's
        transaction, counted as ``replied`` (those of a caller gone meanwhile too: they are
        not results either)."""
        k = self.keys
        for caller, answers in replies.items():
            pipe.rpush(k.replies(caller), *answers)
            pipe.pexpire(k.replies(caller), REPLY_TTL * 1000)  # a caller gone: not kept
        pipe.hincrby(k.stats, Stat.REPLIED, replied)

    def held(self, holding: str) -> list[bytes]:
        """What a holder holds now."""
        return cast(list[bytes], self._read(self.client.lrange, holding, 0, -1))

    def cut(self, holding: str, position: int) -> list[bytes] | None:
        """Hand the tasks of ``holding`` from ``position`` on (counted in tasks) back to the
        head of the queue, for other processes, while its holder runs a slow task. Under
        WATCH: if the holder's list changed meanwhile (a reaper took it), nothing moves and
        None is returned; else the list the holder now holds, which its commit is fenced on.
        Repeated after a lost reply, it finds the list cut already and says so (the same
        list), so the child never commits the rest a second time."""

        def move(pipe: Transaction) -> list[bytes] | None:
            held = cast(list[bytes], pipe.lrange(holding, 0, -1))
            kept, back = split_at(held, position)
            pipe.multi()
            if not held or not kept:
                return None  # an empty transaction: nothing to cut
            if not back:  # cut already: this is a retry whose first EXEC went through
                return kept
            pipe.delete(holding)
            pipe.rpush(holding, *kept)
            pipe.lpush(self.keys.tasks, *reversed(back))
            return kept

        def transaction() -> list[bytes] | None:
            return cast(
                list[bytes] | None,
                self.client.transaction(
                    move,  # type: ignore[arg-type]
                    holding,
                    value_from_callable=True,
                ),
            )

        return cast(list[bytes] | None, self._call(transaction))

    def heartbeat(self, worker: str, lease: float, description: dict[str, Any]) -> int:
        """heartbeat.lua: renew a worker host's lease; returns the Redis time in ms."""
        args = [worker, int(lease * 1000), codec.dumps(description)]
        keys = [self.keys.leases, self.keys.workers]
        return int(self._call(self._scripts.heartbeat, keys=keys, args=args))

    def forget(self, worker: str, expiry: int = FOREVER) -> bool:
        """forget.lua: drop a worker host's registration unless it renewed after ``expiry``."""
        keys = [self.keys.leases, self.keys.workers]
        return bool(self._call(self._scripts.forget, keys=keys, args=[worker, expiry]))

    def leases(self) -> tuple[int, dict[str, int]]:
        """(the Redis time in ms, worker host id -> lease expiry in ms) for every registered
        host, read in one round trip."""

        def read() -> list[Any]:
            look = self.client.pipeline(transaction=True)
            look.time()
            look.zrange(self.keys.leases, 0, -1, withscores=True)
            return look.execute()

        now, leases = self._read(read)
        return redis_ms(now), {wid.decode(): int(score) for wid, score in leases}

    def holders(self) -> dict[str, list[str]]:
        """Worker host id -> its in-flight lists, for every in-flight list there is, found by
        SCAN: a host's children may hold tasks its description does not name (a host reaped
        while its supervisor stalled, whose children went on taking)."""

        def scan() -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            pattern = self.keys.inflight_prefix + "*"
            for raw in self.client.scan_iter(match=pattern, count=1000, _type="list"):
                try:
                    key = cast(bytes, raw).decode()
                except UnicodeDecodeError:  # not one we named: a stray key, left alone
                    continue
                host = key.removeprefix(self.keys.inflight_prefix).rpartition(":")[0]
                found.setdefault(host, []).append(key)
            return found

        return cast(dict[str, list[str]], self._read(scan))

    def workers(self) -> dict[str, dict[str, Any]]:
        """Worker host id -> its self-description, for every host not yet reaped."""
        raw = cast(dict[bytes, bytes], self._read(self.client.hgetall, self.keys.workers))
        return state.descriptions(raw.items())

    def give_back(self, holding: str, sort: Sort) -> Returned:
        """Empty ``holding``: ``sort`` says what goes back to the head of the queue and what is
        answered and dead. Runs under WATCH, so when reapers race (or the holder's own commit
        lands meanwhile), each held task comes back exactly once."""

        def move(pipe: Transaction) -> Returned:
            held = cast(list[bytes], pipe.lrange(holding, 0, -1))
            returned = sort(held) if held else Returned()
            pipe.multi()
            if not held:
                return returned  # an empty transaction: nothing to give back
            pipe.delete(holding, self.keys.held(holding))
            if returned.back:
                pipe.lpush(self.keys.tasks, *reversed(returned.back))
                pipe.hincrby(self.keys.stats, Stat.REQUEUED, _tasks(returned.back))
            if returned.results:
                pipe.rpush(self.keys.results, *returned.results)
                pipe.hincrby(self.keys.stats, Stat.FAILED, _tasks(returned.results))
            if returned.replies:
                replied = sum(_tasks(answers) for answers in returned.replies.values())
                self._reply(pipe, returned.replies, replied)
                pipe.hincrby(self.keys.stats, Stat.FAILED, replied)
            if returned.dead:
                pipe.rpush(self.keys.dead, *returned.dead)
            return returned

        def transaction() -> Returned:
            # redis-py types the callable as returning None even with value_from_callable=True
            return cast(
                Returned,
                self.client.transaction(
                    move,  # type: ignore[arg-type]
                    holding,
                    value_from_callable=True,
                ),
            )

        return cast(Returned, self._call(transaction))

    def reap(
        self, sort_for: Callable[[str], Sort], sweep: bool = True
    ) -> list[tuple[str, Returned]]:
        """Give back what every worker host whose lease ran out held, then drop its
        registration (unless it renewed meanwhile); with ``sweep``, also every in-flight list
        whose host is not registered at all (an orphan: filled after its host was reaped). A
        give-back that fails raises before the host is dropped, so its tasks stay where the
        next reaper looks.

        A sweep finds the lists by SCAN, which walks the whole database: a host sweeps now and
        then, and otherwise finds a lapsed host's lists by its description (one per child; the
        take is fenced on the lease, so no child fills a list after its host's lease ran out).
        The lists are found first and the leases read after: a host registers before its
        children take anything, so a list whose host is missing from the leases read later
        belongs to a host that was dropped, never to one still starting."""
        held = self.holders() if sweep else {}
        now, leases = self.leases()
        lapsed = [(wid, expiry) for wid, expiry in leases.items() if expiry <= now]
        if lapsed and self._outage_just_ended():
            # just after an outage (ours, or a Redis restart or a full memory) every lease may
            # have run out while the hosts, alive, were waiting for Redis as we were
            lapsed = []
        if not sweep and lapsed:
            described = self.workers()
            for wid, _ in lapsed:
                count = state.processes(described.get(wid, {}))
                held[wid] = [self.keys.inflight(wid, i) for i in range(count)]
        reaped = []
        for wid, holding in held.items():
            if wid not in leases:
                reaped.append((wid, self._give_all_back(holding, sort_for(wid))))
        for wid, expiry in lapsed:
            returned = self._give_all_back(held.get(wid, []), sort_for(wid))
            self.forget(wid, expiry)
            reaped.append((wid, returned))
        return reaped

    def _give_all_back(self, holding: list[str], sort: Sort) -> Returned:
        """Each list on its own: one that cannot be given back (a stray key of another type
        under our prefix, say) is logged and left, and the others still come back."""
        returned = Returned()
        for key in holding:
            try:
                returned.extend(self.give_back(key, sort))
            except RedisRefused as exc:
                logging.getLogger("redpool.workers").error("could not give back %s: %s", key, exc)
        return returned

    def promote(self, limit: int = 500) -> int:
        """promote.lua: retries whose time has come, to the head of the queue."""
        keys = [self.keys.delayed, self.keys.tasks]
        return int(self._call(self._scripts.promote, keys=keys, args=[limit]))

    # -- callers (redpool.Pool, redpool.Executor) --------------------------------------------

    def _caller_keys(self, caller: str) -> list[str]:
        k = self.keys
        return [k.callers, k.replies(caller), k.replying(caller), k.held(k.replying(caller))]

    def call_renew(self, caller: str, lease: float, joining: bool = False) -> bool:
        """caller.lua: join (``joining``) or renew a caller's lease; False once it was called
        gone (its lease ran out and a reaper dropped its answers)."""
        args = ["renew", caller, int(lease * 1000), 1 if joining else 0]
        return bool(self._call(self._scripts.caller, keys=self._caller_keys(caller), args=args))

    def call_leave(self, caller: str) -> None:
        """caller.lua: a caller is done; every answer still waiting for it is dropped."""
        keys = self._caller_keys(caller)
        self._call(self._scripts.caller, keys=keys, args=["leave", caller])

    def call_push(self, elements: Sequence[bytes]) -> int:
        """A caller's tasks onto the queue (each names the caller in ``reply``); returns the
        queue's length. Not numbered like a producer's batch: a push repeated after a lost
        reply runs a task twice, and the caller keeps the first answer of each id."""
        return int(self._call(self.client.rpush, self.keys.tasks, *elements))

    def live_callers(self) -> list[str]:
        """Callers not dropped: a caller whose lease ran out is still one until a reaper
        drops it (`expire_callers`, which waits out an outage first), so a caller that only
        stalled, and renews, never loses an answer."""
        live = self._read(self.client.zrange, self.keys.callers, 0, -1)
        return [c.decode() for c in cast(list[bytes], live)]

    def callers(self) -> dict[str, tuple[float, int]]:
        """Caller id -> (seconds its lease has left, answers waiting in its reply list)."""
        now = redis_ms(self._read(self.client.time))
        leases = self._read(self.client.zrange, self.keys.callers, 0, -1, withscores=True)
        out: dict[str, tuple[float, int]] = {}
        for raw, expiry in cast(list[tuple[bytes, float]], leases):
            caller = raw.decode()
            waiting = int(self._read(self.client.llen, self.keys.replies(caller)))
            out[caller] = ((expiry - now) / 1000, waiting)
        return out

    def call_cancel(self, element: bytes) -> bool:
        """Take a caller's task element off the queue; False once a worker took it."""
        return bool(self._call(self.client.lrem, self.keys.tasks, 1, element))

    def take_replies(self, caller: str, count: int, block: float | None) -> holding_list.Taken:
        """Up to ``count`` answer elements of ``caller``'s reply list into its replying list,
        as the sink takes results (what it held before comes first)."""
        k = self.keys
        return cast(
            holding_list.Taken,
            self._call(
                holding_list.take,
                self.client,
                k,
                k.replies(caller),
                k.replying(caller),
                count,
                block,
                self._scripts.take,
            ),
        )

    def ack_replies(self, caller: str, taken: holding_list.Taken) -> int:
        """The caller has what it took: forget it (fenced, as the sink's ack)."""

        def write(_pipe: Transaction) -> None:
            return None

        replying = self.keys.replying(caller)
        settle = holding_list.settle
        fence = self._scripts.holder
        args = (self.client, self.keys, replying, taken, len(taken.held), write, fence)
        return int(self._call(settle, *args))

    def expire_callers(self) -> list[str]:
        """Drop every caller whose lease ran out, with its answers; returns their ids. Not
        just after an outage (see `expire_producers`)."""
        lapsed = self._lapsed(self.keys.callers)
        if not lapsed or self._outage_just_ended():
            return []
        gone = []
        for caller in lapsed:
            keys = self._caller_keys(caller)
            if self._call(self._scripts.caller, keys=keys, args=["expire", caller]):
                gone.append(caller)
        return gone

    # -- the sink ----------------------------------------------------------------------------

    def lease(self, holder: str, seconds: float) -> bool:
        """lease.lua: take or renew the sink's lease; False while another sink holds it."""
        return bool(self._lease(holder, int(seconds * 1000)))

    def release(self, holder: str) -> None:
        """Give the sink's lease up, if we hold it."""
        self._lease(holder, 0)

    def _lease(self, holder: str, ms: int) -> Any:
        keys = [self.keys.sink]
        args: list[str | int] = [holder, ms]
        return self._freeing(
            lambda: self._scripts.lease(keys=keys, args=args),
            lambda: self._scripts.lease_oom(keys=keys, args=args),
        )

    def take_results(self, count: int, block: float | None) -> holding_list.Taken:
        """Up to ``count`` elements of the results list into ``sinking``, as `take` (with
        drain.lua when Redis is out of memory, and then without blocking)."""
        k = self.keys

        def native() -> holding_list.Taken:
            return holding_list.take(
                self.client, k, k.results, k.sinking, count, block, self._scripts.take
            )

        def when_full() -> holding_list.Taken:
            token = secrets.token_hex(8).encode()
            keys = [k.results, k.sinking, k.held(k.sinking)]
            held = cast(
                list[bytes], self._scripts.drain(keys=keys, args=[min(count, MAX_BATCH), token])
            )
            if not held and block:
                time.sleep(block)  # drain.lua cannot block: wait as the take would have
            return holding_list.Taken(held, token)

        return cast(holding_list.Taken, self._freeing(native, when_full))

    def ack(
        self,
        taken: holding_list.Taken,
        counted: int,
        sunk: int,
        mark: tuple[str, int] | None = None,
    ) -> int:
        """The sink wrote what it took: forget it; count ``counted`` answers to tasks a
        producer submitted as drained and all ``sunk`` answers as sunk; record ``mark``
        (output name, bytes written) with it. As `commit`: 1 when acknowledged now, 2 when a
        try whose reply was lost had done it, 0 when what it took was taken back meanwhile
        (it goes out again)."""

        def write(pipe: Transaction) -> None:
            if counted:
                pipe.hincrby(self.keys.stats, Stat.DRAINED, counted)
            if sunk:
                pipe.hincrby(self.keys.stats, Stat.SUNK, sunk)
            if mark is not None:
                pipe.hset(self.keys.outputs, mark[0], mark[1])

        k = self.keys

        def native() -> int:
            held = len(taken.held)
            return holding_list.settle(
                self.client, k, k.sinking, taken, held, write, self._scripts.holder
            )

        def when_full() -> int:
            keys = [k.sinking, k.held(k.sinking), k.stats, k.outputs]
            name, size = mark if mark is not None else ("", 0)
            args: list[bytes | str | int] = [taken.token, len(taken.held), holding_list.DONE_MS]
            args += [counted, sunk, name, size]
            return cast(int, self._scripts.ack(keys=keys, args=args))

        return int(self._freeing(native, when_full))

    def output_mark(self, name: str) -> int | None:
        """Bytes of output ``name`` that hold acknowledged results, as last recorded."""
        mark = self._read(self.client.hget, self.keys.outputs, name)
        return int(cast(bytes, mark)) if mark is not None else None

    def record_output(self, name: str, mark: int) -> None:
        """Record where output ``name``'s acknowledged results end, outside an ack (a sink's
        first use of a file: its size then)."""
        keys = [self.keys.outputs]
        self._freeing(
            lambda: self.client.hset(keys[0], name, mark),
            lambda: self._scripts.mark(keys=keys, args=[name, mark]),
        )

    def results_waiting(self) -> int:
        """Answers in the results list by the counters: what workers wrote less what the sink
        took (one small read; the workers' bound)."""
        fields = [Stat.OK, Stat.FAILED, Stat.SUNK, Stat.REPLIED]
        ok, failed, sunk, replied = cast(
            list[bytes | None], self._read(self.client.hmget, self.keys.stats, fields)
        )
        written = int(ok or 0) + int(failed or 0) - int(replied or 0)
        return max(0, written - int(sunk or 0))

    def purge(self) -> int:
        """Delete every key of the pipeline (found by SCAN, never KEYS); returns how many."""

        def delete() -> int:
            gone = 0
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=self.keys.every, count=1000):
                batch.append(cast(bytes, key))
                if len(batch) == 500:
                    gone += int(self.client.unlink(*batch))
                    batch = []
            return gone + (int(self.client.unlink(*batch)) if batch else 0)

        # no sync to replicas after it: the sync key would bring the pipeline back for an hour
        return self._outage.run(delete, writes=False)

    # -- status and dead letters -------------------------------------------------------------

    def exists(self, besides: Sequence[str] = ()) -> bool:
        """Any key of this pipeline is in Redis, but those named ``besides``. EXISTS first: it
        goes to the pipeline's own slot, so a Redis Cluster node that does not serve it says
        so (MOVED) rather than "no"; then SCAN, for the keys named after a holder."""
        if self._read(self.client.exists, *self.keys.fixed):
            return True
        others = {key.encode() for key in besides}

        def scan() -> bool:
            keys = self.client.scan_iter(match=self.keys.every, count=1000)
            return any(key not in others for key in keys)

        return bool(self._read(scan))

    def snapshot(self, count_tasks: bool = False, every_holder: bool = False) -> state.Snapshot:
        """snapshot.lua: everything `redpool status` shows, read in one step. Counts list
        elements, or with ``count_tasks`` the tasks in them (exact for lists of up to
        `COUNTED` elements, estimated past that).

        In flight counts the lists of registered hosts; with ``every_holder``, also every
        other in-flight list a SCAN finds just before (orphans a reaper has yet to give back:
        what "is anything left to run?" must see). Without it, nothing but the script runs."""
        k = self.keys
        keys = [k.tasks, k.delayed, k.results, k.dead, k.producers, k.stats, k.leases, k.workers]
        keys += [k.run, k.producer_leases, k.last_run]
        if every_holder:
            keys += sorted(key for lists in self.holders().values() for key in lists)
        args = [k.inflight_prefix, COUNTED if count_tasks else 0]
        reply = self._read(self._scripts.snapshot, keys=keys, args=args)
        return state.from_reply(reply)

    def dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        """The oldest ``limit`` dead letters (all when ``limit`` is 0), parsed."""
        end = limit - 1 if limit else -1
        raw = cast(list[bytes], self._read(self.client.lrange, self.keys.dead, 0, end))
        return [deadletters.parse(item) for item in raw]

    def dead_count(self) -> int:
        return int(self._read(self.client.llen, self.keys.dead))

    def has_dead(self, chosen: deadletters.Selection = deadletters.EVERY) -> bool:
        """Any dead letter is chosen."""
        return bool(self._read(deadletters.matching, self.client, self.keys, chosen))

    def rerun(self, chosen: deadletters.Selection, producer: str) -> deadletters.RetryReport:
        """The chosen dead tasks back to the queue as re-runs of ``producer``, which has
        joined the run (see `deadletters.retry`)."""
        report = self._call(deadletters.retry, self.client, self.keys, chosen, producer)
        return cast(deadletters.RetryReport, report)

    def purge_dead(self, chosen: deadletters.Selection = deadletters.EVERY) -> int:
        """Drop the chosen dead letters there are now; returns how many (a letter written in
        between stays)."""
        return int(self._call(deadletters.purge, self.client, self.keys, chosen))


def _tasks(elements: list[bytes]) -> int:
    return sum(tasks_in(raw) for raw in elements)
