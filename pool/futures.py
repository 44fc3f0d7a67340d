"""`Executor`: a `concurrent.futures.Executor` whose work is done by the worker hosts of a
pipeline. ``submit`` returns a Future; ``as_completed``, ``wait`` and done callbacks work;
``max_pending`` bounds the tasks in flight (``submit`` waits, as a job runner's bound does);
``Future.cancel()`` takes back a task no worker has taken yet."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Iterator
from typing import Any

from redpool.keys import DEFAULT_PIPELINE
from redpool.pipeline import RedisTarget
from redpool.pool.caller import Caller, CallerSettings
from redpool.pool.remote import settle
from redpool.registry import Task


class TaskFuture(concurrent.futures.Future[Any]):
    """A Future whose `cancel` takes its task off the queue while no worker holds it."""

    def __init__(self, caller: Caller) -> None:
        super().__init__()
        self._caller = caller
        self._task: tuple[str, bytes] | None = None

    def cancel(self) -> bool:
        if self.done():
            return False
        if self._task is None or not self._caller.cancel(*self._task):
            return False  # taken by a worker already: it runs
        return super().cancel()


class Executor(concurrent.futures.Executor):
    def __init__(
        self,
        redis: RedisTarget = None,
        pipeline: str = DEFAULT_PIPELINE,
        max_pending: int = CallerSettings.max_pending,
        *,
        lease: float = CallerSettings.lease,
    ) -> None:
        self._caller = Caller(redis, pipeline, CallerSettings(lease, max_pending))
        self._shut = False
        self._futures: set[TaskFuture] = set()
        """Not yet done, for shutdown(cancel_futures=True)."""

    def submit(self, fn: Task | str, /, *args: Any, **kwargs: Any) -> TaskFuture:  # type: ignore[override]
        if self._shut:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future = TaskFuture(self._caller)
        (task_id,), element = self._caller.send(
            fn, [(args, kwargs or None)], lambda _index, body: settle(future, body)
        )
        future._task = (task_id, element)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def map(  # type: ignore[override]
        self,
        fn: Task | str,
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)  # type: ignore[arg-type]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shut = True
        if cancel_futures:
            for future in list(self._futures):
                future.cancel()
        if wait:
            self._caller.wait_idle()
        self._caller.close()
