"""Producer: submit tasks, in batches, with backpressure, exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from redpool.envelope import encode_task
from redpool.errors import StreamClosed
from redpool.keys import DEFAULT_PIPELINE, instance_id
from redpool.pipeline import MAX_BATCH, Pipeline, RedisTarget
from redpool.registry import Task
from redpool.settings import require, require_range

log = logging.getLogger("redpool.producer")

Call = tuple[list[Any] | tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class ProducerSettings:
    max_backlog: int | None = None
    """Block while the queue holds more tasks than this: bounds Redis memory."""
    batch_size: int = 500
    """Tasks per push: one round trip each."""

    def __post_init__(self) -> None:
        require_range("batch_size", self.batch_size, 1, MAX_BATCH)
        require(
            self.max_backlog is None or self.max_backlog >= 1,
            "max_backlog",
            f"must be at least 1, not {self.max_backlog}",
        )


class Producer:
    """Pushes tasks to one pipeline. Use as a context manager, or call ``close()``.

    Joining happens here, at construction: from now on the stream stays open until this
    producer closes, so a sink cannot finish while we are still about to submit.
    """

    def __init__(
        self,
        redis: RedisTarget = None,
        pipeline: str = DEFAULT_PIPELINE,
        settings: ProducerSettings | None = None,
    ) -> None:
        self.settings = settings or ProducerSettings()
        self.pipe = Pipeline.connect(redis, pipeline, log=log)
        self.id = instance_id()
        self.submitted = 0
        self._batch_size = min(self.settings.batch_size, self.settings.max_backlog or MAX_BATCH)
        self._batch = 0
        self._closed = False
        self.pipe.join(self.id)

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
        for chunk in _batches(calls, self._batch_size):
            self._push([encode_task(self._next_id(), name, a, k, self.id) for a, k in chunk])
            count += len(chunk)
        return count

    def close(self) -> None:
        """End this producer's part of the stream (idempotent)."""
        if not self._closed:
            self.pipe.close(self.id)
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
        self._wait_for_room(self.pipe.push(self.id, self._batch, payloads))

    def _wait_for_room(self, backlog: int) -> None:
        """Block while the backlog is over ``max_backlog``: bounds Redis memory."""
        limit = self.settings.max_backlog
        if limit is None:
            return
        delay = 0.002
        while backlog > limit:
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
            backlog = self.pipe.backlog()


def _name(task: Task | str) -> str:
    return task.name if isinstance(task, Task) else task


def _batches(items: Iterable[Call], size: int) -> Iterator[list[Call]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
