"""Producer: submit tasks, in batches, with backpressure, exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import redis

from redpool.connection import Outage, client_for
from redpool.envelope import encode_task
from redpool.errors import ConfigError, StreamClosed
from redpool.keys import Keys, instance_id
from redpool.registry import Task
from redpool.scripts import MAX_BATCH, Scripts

log = logging.getLogger("redpool.producer")

Call = tuple[list[Any] | tuple[Any, ...], dict[str, Any]]


class Producer:
    """Pushes tasks to one pipeline. Use as a context manager, or call ``close()``.

    Joining happens here, at construction: from now on the stream stays open until this
    producer closes, so a sink cannot finish while we are still about to submit.
    """

    def __init__(
        self,
        redis_url: str | redis.Redis | None = None,
        pipeline: str = "default",
        *,
        max_backlog: int | None = None,
        batch_size: int = 500,
        wait: float = 10.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH or (max_backlog is not None and max_backlog < 1):
            raise ConfigError(f"batch_size must be 1..{MAX_BATCH} and max_backlog at least 1")
        self.client = client_for(redis_url, wait)
        self.keys = Keys(pipeline)
        self.max_backlog = max_backlog
        self.batch_size = min(batch_size, max_backlog or batch_size)
        self.id = instance_id()
        self.submitted = 0
        self._batch = 0
        self._closed = False
        self._scripts = Scripts.register(self.client)
        self._outage = Outage(log)
        self._outage.call(self.client.hsetnx, self.keys.producers, self.id, 0)

    def submit(self, task: Task | str, /, *args: Any, **kwargs: Any) -> str:
        """Push one task now; returns its id."""
        name = _name(task)
        task_id = self._next_id()
        self._push([encode_task(task_id, name, args, kwargs, self.id)])
        return task_id

    def map(self, task: Task | str, iterable: Iterable[Any]) -> int:
        """One task per item (the item is its one argument), pushed in batches."""
        return self.submit_many(task, (((item,), {}) for item in iterable))

    def submit_many(self, task: Task | str, calls: Iterable[Call]) -> int:
        """One task per ``(args, kwargs)``, pushed in batches; returns how many.

        Streams: only one batch is in memory at a time, whatever the size of ``calls``.
        """
        name = _name(task)
        count = 0
        for chunk in _chunks(calls, self.batch_size):
            self._push([encode_task(self._next_id(), name, a, k, self.id) for a, k in chunk])
            count += len(chunk)
        return count

    def close(self) -> None:
        """End this producer's part of the stream (idempotent)."""
        if not self._closed:
            self._outage.call(self.client.hset, self.keys.producers, self.id, "closed")
            self._closed = True

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_id(self) -> str:
        self.submitted += 1
        return f"{self.id}-{self.submitted}"

    def _push(self, payloads: list[bytes]) -> None:
        if self._closed:
            raise StreamClosed(f"producer {self.id} is closed")
        self._batch += 1
        args = [self.id, self._batch, *payloads]
        keys = [self.keys.tasks, self.keys.producers, self.keys.stats]
        try:
            backlog = self._outage.call(self._scripts.push, keys=keys, args=args)
        except redis.ResponseError as exc:
            if "STREAMCLOSED" in str(exc):
                raise StreamClosed(str(exc).split(" ", 1)[1]) from None
            raise
        self._wait_for_room(int(backlog))

    def _wait_for_room(self, backlog: int) -> None:
        """Block while the backlog is over ``max_backlog``: bounds Redis memory."""
        if self.max_backlog is None:
            return
        delay = 0.002
        while backlog > self.max_backlog:
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
            backlog = self._outage.call(self.client.llen, self.keys.tasks)


def _name(task: Task | str) -> str:
    return task.name if isinstance(task, Task) else task


def _chunks(items: Iterable[Call], size: int) -> Iterator[list[Call]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
