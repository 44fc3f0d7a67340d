"""Settings -> client, the wait for Redis at start, and riding out outages later.

Two different failures, two different answers: Redis unreachable when a role starts is a
configuration problem (one line, non-zero exit after a bounded wait), while Redis going away
once we were connected is an outage (retry with backoff, log one line, resume). Transient
errors are handled here and in `Outage`; any other Redis error reaches the CLI, which prints
it as one line.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redpool.errors import Aborted, ConfigError, RedisRefused, RedisUnavailable
from redpool.settings import RedisSettings

TRANSIENT = (redis.ConnectionError, redis.TimeoutError)
"""Errors that mean "Redis is away for now", never "Redis said no"."""
T = TypeVar("T")


def new_client(settings: RedisSettings) -> redis.Redis:
    """A client for these settings; ``rediss://`` and passwords come with the URL."""
    try:
        return redis.Redis.from_url(
            settings.url,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=min(settings.socket_timeout, 5.0),
            # No retries inside redis-py: it would send the one command again (a BLMOVE that
            # ran but whose reply was lost would move a second element). `Outage` repeats
            # whole operations instead, each of them safe to repeat.
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {safe_url(settings.url)!r}: {exc}") from None


def connect(settings: RedisSettings) -> redis.Redis:
    """A client that answered PING, or RedisUnavailable after ``settings.wait`` seconds."""
    client = new_client(settings)
    deadline = time.monotonic() + settings.wait
    delay = 0.05
    while True:
        try:
            client.ping()
            return client
        except redis.AuthenticationError as exc:
            raise ConfigError(f"Redis at {safe_url(settings.url)} refused: {exc}") from None
        except redis.ResponseError as exc:
            raise ConfigError(f"Redis at {safe_url(settings.url)} answered: {exc}") from None
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise RedisUnavailable(
                    f"cannot reach Redis at {safe_url(settings.url)} after {settings.wait:g} s: "
                    f"{exc}"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def redis_ms(reply: tuple[int, int] | list[int]) -> int:
    """Redis TIME -> milliseconds: the clock every host agrees on."""
    return int(reply[0]) * 1000 + int(reply[1]) // 1000


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def never() -> bool:
    return False


class Outage:
    """Runs Redis calls, riding out outages: retry with backoff, one log line per outage.

    Every call we make is safe to repeat (the scripts are fenced or idempotent), which is
    what makes blind retrying correct here rather than a source of duplicates. ``abort`` is
    asked between tries: once it says yes (a second signal), the call raises `Aborted`.
    Any other error from Redis becomes `RedisRefused`, so nothing above the contract needs
    redis-py's exceptions.
    """

    def __init__(self, log: logging.Logger, abort: Callable[[], bool] = never) -> None:
        self.log = log
        self.abort = abort

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        started: float | None = None
        delay = 0.05
        failed = False
        while True:
            try:
                value = fn(*args, **kwargs)
            except TRANSIENT as exc:
                if self.abort():
                    raise Aborted(f"Redis unavailable ({exc})") from None
                if not failed:  # once, at once and quietly: a connection Redis closed idle
                    failed = True
                    continue
                if started is None:
                    started = time.monotonic()
                    self.log.warning("Redis unavailable (%s); retrying until it is back", exc)
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 2.0)
                continue
            except redis.RedisError as exc:
                raise RedisRefused(str(exc)) from None
            if started is not None:
                self.log.info("Redis back after %.1f s", time.monotonic() - started)
            return value
