"""Redis URL -> client, the wait for Redis at start, and riding out outages later.

Two different failures, two different answers: Redis unreachable when a role starts is a
configuration problem (one line, non-zero exit after a bounded wait), while Redis going away
once we were connected is an outage (retry with backoff, log one line, resume). Redis errors
become ours here, so nothing above this module catches ``redis.exceptions`` for control flow.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from redpool.errors import Aborted, ConfigError, RedisUnavailable

DEFAULT_URL = "redis://localhost:6379/0"
_TRANSIENT = (redis.ConnectionError, redis.TimeoutError)
T = TypeVar("T")


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is and how patient to be with it."""

    url: str = DEFAULT_URL
    wait: float = 10.0
    """Seconds to wait for Redis when a role starts (compose starts Redis alongside us)."""
    socket_timeout: float = 15.0
    """Must stay above the longest blocking command we send (BLMOVE waits 1 s)."""

    def client(self) -> redis.Redis:
        """A client for this URL; ``rediss://`` and passwords come with the URL."""
        try:
            return redis.Redis.from_url(
                self.url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=min(self.socket_timeout, 5.0),
                retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.5), 2),
                retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            )
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL {self.url!r}: {exc}") from None


def connect(settings: RedisSettings) -> redis.Redis:
    """A client that answered PING, or RedisUnavailable after ``settings.wait`` seconds."""
    client = settings.client()
    deadline = time.monotonic() + settings.wait
    delay = 0.05
    while True:
        try:
            client.ping()
            return client
        except redis.AuthenticationError as exc:
            raise ConfigError(f"Redis at {_safe(settings.url)} refused: {exc}") from None
        except redis.ResponseError as exc:
            raise ConfigError(f"Redis at {_safe(settings.url)} answered: {exc}") from None
        except _TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise RedisUnavailable(
                    f"cannot reach Redis at {_safe(settings.url)} after {settings.wait:g} s: {exc}"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def client_for(target: redis.Redis | str | None, wait: float = 10.0) -> redis.Redis:
    """The API's first argument: a client to use as it is, or a URL to connect to."""
    if isinstance(target, str | None):
        return connect(RedisSettings(target or DEFAULT_URL, wait=wait))
    return target


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class Outage:
    """Runs Redis calls, riding out outages: retry with backoff, one log line per outage.

    Every call we make is safe to repeat (the scripts are fenced or idempotent), which is
    what makes blind retrying correct here rather than a source of duplicates.
    """

    def __init__(self, log: logging.Logger, abort: Callable[[], bool] = lambda: False) -> None:
        self._log = log
        self._abort = abort

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        started: float | None = None
        delay = 0.05
        while True:
            try:
                value = fn(*args, **kwargs)
            except _TRANSIENT as exc:
                if started is None:
                    started = time.monotonic()
                    self._log.warning("Redis unavailable (%s); retrying until it is back", exc)
                if self._abort():
                    raise Aborted from None
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 2.0)
                continue
            if started is not None:
                self._log.info("Redis back after %.1f s", time.monotonic() - started)
            return value
