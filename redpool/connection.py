"""Settings -> client, the wait for Redis at start, and riding out outages later.

Two different failures, two different answers: Redis unreachable when a role starts is a
configuration problem (one line, non-zero exit after a bounded wait), while Redis going away
once we were connected is an outage (retry with backoff, log one line, resume). Transient
errors are handled here and in `Outage`; any other Redis error becomes one of ours in
`explain`, the one place that says what a Redis error means for the user, and the CLI prints
it as one line.
"""

from __future__ import annotations

import logging
import math
import random
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError

from redpool import sentinel
from redpool.cluster import ELSEWHERE
from redpool.errors import (
    Aborted,
    ConfigError,
    RedisRefused,
    RedisUnavailable,
    RedpoolError,
    TooLarge,
)
from redpool.replication import Sync
from redpool.settings import RedisSettings, netloc

TRANSIENT = (redis.ConnectionError, redis.TimeoutError)
"""Errors that mean "Redis is away for now", never "Redis said no" (but see `AUTH`)."""
AUTH = redis.AuthenticationError
"""A refused password (WRONGPASS, NOAUTH): redis-py makes it a ConnectionError, but a retry
gets the same answer for ever (a password rotated mid-run), so it is never an outage."""
OOM = redis.exceptions.OutOfMemoryError
"""Redis is at its maxmemory (under noeviction): waited out like an outage, as the sink frees
memory as it drains results; the sink itself goes on with scripts allowed to run then."""
T = TypeVar("T")


def new_client(settings: RedisSettings) -> redis.Redis:
    """A client for these settings; ``rediss://`` and passwords come with the URL, and a
    ``redis+sentinel://`` URL makes a client of the primary the sentinels name (`sentinel`)."""
    connection: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": min(settings.socket_timeout, 5.0),
        # No retries inside redis-py: it would send the one command again (a BLMOVE that
        # ran but whose reply was lost would move a second element). `Outage` repeats
        # whole operations instead, each of them safe to repeat.
        "retry": Retry(NoBackoff(), 0),
    }
    try:
        if sentinel.is_sentinel_url(settings.redis_url):
            client = sentinel.client(sentinel.SentinelURL.parse(settings.redis_url), **connection)
        else:
            client = redis.Redis.from_url(settings.redis_url, **connection)
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {safe_url(settings.url)!r}: {exc}") from None
    if settings.replicas:
        _REPLICAS[client] = (settings.replicas, settings.replicas_timeout)
    return client


_REPLICAS: weakref.WeakKeyDictionary[redis.Redis, tuple[int, float]] = weakref.WeakKeyDictionary()
"""Client -> (replicas, timeout) its writes wait for (``?replicas=N``): kept beside the clients
`new_client` made rather than on them, so an `Outage` given only the client finds it."""


def same_replicas(client: redis.Redis, like: redis.Redis) -> None:
    """``client`` (a shard's, for a Redis Cluster node) waits for the replicas ``like`` (the
    client made from the URL) waits for."""
    wanted = _REPLICAS.get(like)
    if wanted is not None:
        _REPLICAS[client] = wanted


def connect(settings: RedisSettings) -> redis.Redis:
    """A client that answered PING, or RedisUnavailable after ``settings.wait`` seconds."""
    client = new_client(settings)
    waiting(settings, client, client.ping)
    return client


def waiting(settings: RedisSettings, client: redis.Redis, attempt: Callable[[], T]) -> T:
    """``attempt()`` (a first call to Redis through ``client``), tried again while Redis is
    unreachable, for up to ``settings.wait`` seconds; then RedisUnavailable. What Redis
    refuses is one of our errors at once (`explain`)."""
    deadline = time.monotonic() + settings.wait
    delay = 0.05
    while True:
        try:
            return attempt()
        except (AUTH, redis.ResponseError) as exc:
            raise explain(exc, address(client)) from None
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise _unavailable(client, settings, exc) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _unavailable(client: redis.Redis, settings: RedisSettings, exc: Exception) -> RedpoolError:
    if isinstance(exc, MasterNotFoundError):
        return RedisUnavailable(
            f"cannot find the primary at {address(client)} after {settings.wait:g} s: "
            f"{sentinel.why_no_primary(client)}"
        )
    return RedisUnavailable(
        f"cannot reach Redis at {safe_url(settings.url)} after {settings.wait:g} s: {exc}"
    )


def require_noeviction(client: redis.Redis) -> None:
    """Refuse to run on a Redis that evicts keys when full: it would drop tasks, results and
    leases silently, and every role would still end "complete". Says nothing when neither
    CONFIG nor INFO is allowed (an ACL, a renamed command): there is no way to tell."""
    policy = _eviction_policy(client)
    if policy is None or policy == "noeviction":
        return
    raise ConfigError(
        f"Redis at {address(client)} evicts keys when it is full (maxmemory-policy {policy}), "
        "which loses tasks and results silently: run CONFIG SET maxmemory-policy noeviction "
        "(and set it in redis.conf)"
    )


def _eviction_policy(client: redis.Redis) -> str | None:
    try:
        reply = cast(dict[str, str], client.config_get("maxmemory-policy"))
        if "maxmemory-policy" in reply:
            return str(reply["maxmemory-policy"])
    except (redis.ResponseError, AUTH):  # a NoPermissionError, or CONFIG renamed away
        pass
    try:
        info = client.info("memory")
    except (redis.ResponseError, AUTH):
        return None
    policy = info.get("maxmemory_policy")
    return None if policy is None else str(policy)


def maxmemory(client: redis.Redis) -> str:
    """Redis' maxmemory for a message, as "maxmemory 3,145,728 bytes" ("maxmemory" alone when
    it will not say: CONFIG refused by an ACL). CONFIG GET is allowed when Redis is full."""
    try:
        reply = cast(dict[str, str], client.config_get("maxmemory"))
        return f"maxmemory {int(reply['maxmemory']):,} bytes"
    except (redis.RedisError, KeyError, ValueError):
        return "maxmemory"


def redis_ms(reply: tuple[int, int] | list[int]) -> int:
    """Redis TIME -> milliseconds: the clock every host agrees on."""
    return int(reply[0]) * 1000 + int(reply[1]) // 1000


def safe_url(url: str) -> str:
    """The URL without its secrets, for messages: user and password (``***@``), and a
    ``password`` (or ``username``) query parameter. A URL too malformed to take apart is
    masked up to its last ``@``, or shown as ``(a malformed URL)`` when it has a query."""
    try:
        parts = urlsplit(url)
        location = parts.netloc
        if "@" in location:
            location = "***@" + location.rsplit("@", 1)[1]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
        if parts.scheme and url.startswith(f"{parts.scheme}://"):
            return f"{parts.scheme}://{location}{parts.path}{'?' if query else ''}{query}"
    except ValueError:
        pass
    if "?" in url:
        return "(a malformed URL)"
    return "***@" + url.rsplit("@", 1)[1] if "@" in url else url


_SECRET_PARAMS = {"password", "username", "sentinel_password", "sentinel_username"}


def address(client: redis.Redis) -> str:
    """Where ``client`` points, as a URL for messages: any user name and password is ``***``.
    A sentinel client's also names the primary it found."""
    shown = sentinel.where(client)
    if shown is not None:
        return shown
    kwargs = client.connection_pool.connection_kwargs
    auth = "***@" if kwargs.get("username") or kwargs.get("password") else ""
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{auth}{kwargs['path']}?db={db}"
    tls = issubclass(client.connection_pool.connection_class, redis.SSLConnection)
    there = netloc(str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379)))
    return f"{'rediss' if tls else 'redis'}://{auth}{there}/{db}"


def explain(exc: redis.RedisError, where: str, pipeline: str | None = None) -> RedpoolError:
    """What Redis at ``where`` said, as one of our errors whose message says what to do.

    The one place that reads redis-py's exceptions for what they mean to the user: a missing
    or refused password, a Redis Cluster node that sends us to another node (MOVED, ASK,
    TRYAGAIN) or says the cluster is down, a user the ACL does not allow a command. Anything else is
    `RedisRefused` with what Redis answered."""
    code = exc.status_code
    if code == "NOAUTH":
        return ConfigError(f"Redis at {where} needs a password: put it in the URL {_AUTH}")
    if isinstance(exc, redis.AuthenticationError):
        return ConfigError(
            f"Redis at {where} refused the password in the URL ({exc}): check it {_AUTH}"
        )
    if isinstance(exc, redis.exceptions.AskError):  # MOVED is one too
        return ConfigError(_elsewhere(exc, where, pipeline))
    if code == "TRYAGAIN":  # some keys of the slot moved to another node, some not yet
        return RedisRefused(
            f"Redis at {where} is a Redis Cluster node, and {_whose(pipeline)} is moving its keys "
            f"to another node ({exc}): try again once the move is done",
            reply=str(exc),
        )
    if code == "CLUSTERDOWN":
        return RedisRefused(
            f"Redis at {where} is a Redis Cluster node, and it says the cluster is down "
            f"({exc}): try again once every slot is served",
            reply=str(exc),
        )
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return ConfigError(
            f"Redis at {where} does not allow the user in the URL what redpool needs ({exc}): "
            "grant it with ACL SETUSER, or use another user"
        )
    return RedisRefused(f"Redis at {where} answered: {exc}", reply=str(exc))


_AUTH = "(redis://:PASSWORD@host:port/0 or redis://USER:PASSWORD@...)"


def _elsewhere(exc: redis.exceptions.AskError, where: str, pipeline: str | None) -> str:
    """MOVED (the keys' slot lives on another node) or ASK (it is moving there right now)."""
    node = netloc(exc.host, exc.port)
    parts = urlsplit(where)
    scheme = parts.scheme if parts.scheme in ("redis", "rediss") else "redis"
    there = f"{scheme}://{'***@' if '@' in parts.netloc else ''}{node}/0"
    whose = _whose(pipeline)
    if isinstance(exc, redis.exceptions.MovedError):
        return (
            f"Redis at {where} is a Redis Cluster node, and {whose} keeps its keys on node "
            f"{node}: allow the user in the URL INFO (redpool finds the cluster's nodes "
            f"through it), or point --redis at {there}"
        )
    return (
        f"Redis at {where} is a Redis Cluster node, and {whose} is moving its keys to node "
        f"{node}: allow the user in the URL INFO (redpool finds the cluster's nodes through "
        f"it), or once the move is done, point --redis at {there}"
    )


def _whose(pipeline: str | None) -> str:
    return f"pipeline {pipeline!r}" if pipeline else "the keys asked for"


def never() -> bool:
    return False


DROPS = 3
"""Times in a row Redis may drop the connection on one call while it answers a PING right
after, before the call is taken as refused: Redis closes a client's connection, with no
reply it could read, on a request over its limits."""


AWAY, PASSING, FULL, REFUSED = "away", "passing", "full", "refused"
"""What an error from Redis is to a caller (`kind_of`): Redis unreachable; Redis there but in
a state that passes (a failover, a load, a full disk for its persistence); out of memory;
or a refusal that a retry would get again."""

_PASSING = {"READONLY", "MISCONF", "BUSY", "MASTERDOWN", "NOREPLICAS", "LOADING"}
"""Replies of a Redis that will serve us again once it is done: a replica promoted by a
failover, a disk full for its AOF or RDB, a long script, a primary gone, a dataset loading."""


def kind_of(exc: redis.RedisError, routed: bool = False) -> str:
    """What ``exc`` is to a caller; ``routed`` when it can find a slot's node again (on a Redis
    Cluster), for which a node saying the slot is elsewhere (`ELSEWHERE`) passes too."""
    if isinstance(exc, AUTH):  # a ConnectionError to redis-py, and no outage to us
        return REFUSED
    if routed and isinstance(exc, ELSEWHERE):
        return PASSING
    if isinstance(exc, OOM):
        return FULL
    if isinstance(exc, TRANSIENT):
        return AWAY
    if isinstance(exc, redis.ResponseError) and str(exc).split(" ", 1)[0] in _PASSING:
        return PASSING
    return REFUSED


class Outage:
    """Runs Redis calls, riding out outages: retry with backoff, one log line per outage.

    Every call we make is safe to repeat (the scripts are fenced or idempotent), which is
    what makes blind retrying correct here rather than a source of duplicates. ``abort`` is
    asked between tries: once it says yes (a second signal), the call raises `Aborted`.
    A Redis out of memory (`OOM`) is waited out the same way: the sink frees memory. A
    refused password is not an outage (`AUTH`), and neither is a connection Redis drops on
    one call while it answers a PING (`DROPS`): that call is refused (`TooLarge`). A reply
    that says Redis will serve us again (a failover's READONLY, MISCONF, BUSY...) is waited
    out like an outage. Any other error from
    Redis becomes one of ours (`explain`: where is Redis, ``where``, and which pipeline it is
    about), so nothing above the contract needs redis-py's exceptions.

    With a ``sync_key`` and a client made from a URL with ``?replicas=N``, a call that writes
    returns only once N replicas have its writes, or WAIT's timeout said they are not there
    (`redpool.replication`); a call that only reads says so (`read`, ``writes=False``). A
    connection lost in the sync repeats the call, as a reply lost would.
    """

    def __init__(
        self,
        log: logging.Logger,
        abort: Callable[[], bool] = never,
        *,
        where: str = "?",
        pipeline: str | None = None,
        client: redis.Redis | None = None,
        reroute: Callable[[], None] | None = None,
        sync_key: str | None = None,
    ) -> None:
        self.log = log
        self.reroute = reroute
        """Finds the node that serves the caller's slot again (a Redis Cluster), before each
        try after the first failed one: a failover or a resharding moved it."""
        self.abort = abort
        self.where = where
        self.pipeline = pipeline
        self.client = client
        """Asked for its maxmemory when Redis is full, for the message, and PINGed when a
        call's connection drops (see `DROPS`)."""
        self.back_at = -math.inf
        """time.monotonic() when the last outage this caller rode out ended."""
        self.away_since: float | None = None
        """time.monotonic() when the outage a call is riding out now began, if one is."""
        wanted = _REPLICAS.get(client) if client is not None else None
        self.sync = (
            Sync(client, sync_key, *wanted, log=log) if wanted and client and sync_key else None
        )
        """Run after each call that writes, when its client asks for replicas."""

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.run(lambda: fn(*args, **kwargs))

    def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call` for a call that writes nothing: it pays no sync to replicas."""
        return self.run(lambda: fn(*args, **kwargs), writes=False)

    def run(self, fn: Callable[[], T], wait_for_memory: bool = True, writes: bool = True) -> T:
        """``fn()``, riding out outages; without ``wait_for_memory``, an `OOM` is raised to
        the caller (which has a way to go on under it) rather than waited out. A call that
        ``writes`` is synced to the replicas asked for, if any (see the class)."""
        started: float | None = None
        delay = 0.05
        failed = False
        dropped = 0
        while True:
            try:
                value = fn()
                if writes and self.sync is not None:
                    self.sync()
            except redis.RedisError as exc:
                kind = kind_of(exc, self.reroute is not None)
                if kind == REFUSED or (kind == FULL and not wait_for_memory):
                    self.away_since = None
                    if kind == FULL:
                        raise
                    raise explain(exc, self.where, self.pipeline) from None
                if isinstance(exc, redis.ConnectionError) and self._answers():
                    dropped = self._dropped(exc, dropped + 1)
                    continue  # at once: Redis is there
                if self.away_since is None:
                    self.away_since = time.monotonic()
                self._abort_if_told(exc)
                if kind == AWAY and not failed:  # once, at once and quietly: a closed connection
                    failed = True
                    continue
                if started is None:
                    started = time.monotonic()
                    self.log.warning(self._full() if kind == FULL else self._away(exc, kind))
            else:
                self.away_since = None
                if started is not None:
                    self.back_at = time.monotonic()
                    self.log.info("Redis back after %.1f s", self.back_at - started)
                return value
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 2.0)
            self._find_again()

    def _find_again(self) -> None:
        """`reroute`, where there is one; a cluster none of whose nodes answers yet is the
        outage going on."""
        if self.reroute is None:
            return
        try:
            self.reroute()
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            self.log.debug("cluster slots not read: %s", exc)

    def _abort_if_told(self, exc: Exception) -> None:
        if self.abort():
            self.away_since = None
            raise Aborted(f"Redis unavailable ({exc})") from None

    def _dropped(self, exc: Exception, times: int) -> int:
        """``times`` drops of one request's connection while Redis answers: refused at
        `DROPS` (a value Redis will not take), else try again."""
        if times < DROPS:
            return times
        self.away_since = None
        raise TooLarge(
            f"Redis at {self.where} dropped the connection on this request {times} times "
            f"while it answers others ({exc}): a value over its proto-max-bulk-len or "
            "client-query-buffer-limit?",
            reply=str(exc),
        ) from None

    def _answers(self) -> bool:
        """Redis answers a PING (on another connection of the pool)."""
        if self.client is None:
            return False
        try:
            self.client.ping()
        except redis.RedisError:
            return False
        return True

    @staticmethod
    def _away(exc: Exception, kind: str) -> str:
        if kind == PASSING:
            return f"Redis says it cannot serve us now ({exc}); retrying until that passes"
        return f"Redis unavailable ({exc}); retrying until it is back"

    def _full(self) -> str:
        limit = maxmemory(self.client) if self.client is not None else "maxmemory"
        return (
            f"Redis is out of memory ({limit}): waiting until the sink drains results (or "
            "raise maxmemory, or lower --max-backlog)"
        )
