"""``?replicas=N``: a write is on N replicas before the role that made it goes on.

Redis replicates asynchronously: a primary acknowledges a write before any replica has it, so
a failover can lose the last writes it acknowledged. After each call that writes, `Sync`
sends, pipelined on one connection without MULTI, ``SET <sync key> 1`` and ``WAIT N <timeout>``.
WAIT waits for the calling connection's own last write, and the pool may hand another
connection to the next command; but replication is one ordered stream, so once a replica has
our tiny SET it has every write of ours made before it, on whichever connection. The sync
key is the caller's own, in its hash slot, so this works on a Redis Cluster node too.

Durable while the replicas are there: when WAIT says fewer than N replicas have the write
(none left after a failover, or a slow one), the role neither blocks nor fails. It logs one
warning, goes on without waiting, looks every second whether N replicas are online again (one
cheap INFO), and then waits again and says so.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis.exceptions import AskError, OutOfMemoryError

PROBE_EVERY = 1.0
"""Seconds between looks, while too few replicas answer, at how many are online."""
SYNC_TTL = 3600
"""Seconds the sync key lives past its last write: it goes with a pipeline no one uses."""


class Sync:
    """The sync after a write: on ``client``, through ``key``, to ``replicas`` replicas."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        replicas: int,
        timeout: float,
        log: logging.Logger,
    ) -> None:
        self.client = client
        self.key = key
        self.replicas = replicas
        self.timeout_ms = max(1, round(timeout * 1000))
        self.log = log
        self.short_since: float | None = None
        """time.monotonic() when WAIT last found too few replicas; None while enough do."""
        self._probed = 0.0

    def __call__(self) -> None:
        """Raises what redis-py raises (a connection lost): the caller repeats its call, as
        after a lost reply, which is safe for every call redpool makes."""
        node = self.client
        if self.short_since is not None and not self._back(node):
            return
        with node.pipeline(transaction=False) as pipe:
            pipe.set(self.key, b"1", ex=SYNC_TTL)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)  # type: ignore[no-untyped-call]
            try:
                _, acked = pipe.execute()
            except (OutOfMemoryError, AskError):
                # Redis is full (the sink is freeing it: its call must go through) or the slot
                # moved (the caller's next call follows it): no sync this time.
                return
        self._judge(int(acked))

    def _judge(self, acked: int) -> None:
        if acked >= self.replicas:
            if self.short_since is not None:
                self.log.info(
                    "writes reach %d replica(s) again, after %.1f s without",
                    self.replicas,
                    time.monotonic() - self.short_since,
                )
                self.short_since = None
            return
        if self.short_since is None:
            self.short_since = time.monotonic()
            self._probed = self.short_since
            self.log.warning(
                "only %d of %d replica(s) acknowledged a write within %d ms: going on without "
                "waiting for replicas until they are back (a failover meanwhile may lose the "
                "last writes)",
                acked,
                self.replicas,
                self.timeout_ms,
            )

    def _back(self, node: redis.Redis) -> bool:
        """Enough replicas online again to wait for them (asked at most every `PROBE_EVERY`)."""
        now = time.monotonic()
        if now - self._probed < PROBE_EVERY:
            return False
        self._probed = now
        try:
            info: dict[str, Any] = node.info("replication")
        except (OutOfMemoryError, AskError):
            return False
        except redis.ResponseError:  # INFO not allowed (an ACL): the next WAIT is the look
            return True
        online = sum(
            1
            for name, value in info.items()
            if name.startswith("slave")
            and isinstance(value, dict)
            and value.get("state") == "online"
        )
        return online >= self.replicas
