"""`Pool`: `multiprocessing.Pool`'s methods, run by the worker hosts of a pipeline.

A script written for ``multiprocessing.Pool(4)`` runs with ``redpool.Pool(redis=URL)``
instead: the function is a registered ``@task`` (the object or its name), its arguments and
results are JSON, and every host running ``redpool worker`` on the pipeline does the work.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from redpool.keys import DEFAULT_PIPELINE
from redpool.pipeline import RedisTarget
from redpool.pool.caller import Caller, CallerSettings
from redpool.pool.remote import error_of
from redpool.registry import Task

Call = tuple[Sequence[Any], dict[str, Any] | None]
AUTO_CHUNK = 64
"""Tasks per element when no chunksize is given: few enough to spread over the hosts' processes,
enough that a chunk's own cost is small beside no-op tasks."""


class AsyncResult:
    """As `multiprocessing.pool.AsyncResult`: `get`, `wait`, `ready`, `successful`."""

    def __init__(self, future: Future[Any]) -> None:
        self._future = future

    def get(self, timeout: float | None = None) -> Any:
        try:
            return self._future.result(timeout)
        except TimeoutError:
            raise multiprocessing_timeout() from None

    def wait(self, timeout: float | None = None) -> None:
        try:
            self._future.exception(timeout)
        except TimeoutError:
            return

    def ready(self) -> bool:
        return self._future.done()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError("the result is not ready")
        return self._future.exception() is None


def multiprocessing_timeout() -> Exception:
    import multiprocessing

    return multiprocessing.TimeoutError()


class Pool:
    """``redpool.Pool(redis=URL, pipeline="default")``: map, imap, imap_unordered, starmap,
    apply, apply_async, map_async, starmap_async, close, join, terminate, and ``with``."""

    def __init__(
        self,
        redis: RedisTarget = None,
        pipeline: str = DEFAULT_PIPELINE,
        *,
        lease: float = CallerSettings.lease,
        max_pending: int = CallerSettings.max_pending,
    ) -> None:
        self._caller = Caller(redis, pipeline, CallerSettings(lease, max_pending))
        self._closed = False
        self._window = max_pending

    # -- one call ------------------------------------------------------------------------

    def apply(
        self, func: Task | str, args: Sequence[Any] = (), kwds: dict[str, Any] | None = None
    ) -> Any:
        return self.apply_async(func, args, kwds).get()

    def apply_async(
        self,
        func: Task | str,
        args: Sequence[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult:
        self._open()
        future: Future[Any] = Future()
        _notify(future, callback, error_callback)
        self._caller.send(func, [(args, kwds or None)], [_settle(future)])
        return AsyncResult(future)

    # -- many calls ----------------------------------------------------------------------

    def map(
        self, func: Task | str, iterable: Iterable[Any], chunksize: int | None = None
    ) -> list[Any]:
        return list(self.imap(func, iterable, chunksize))

    def starmap(
        self, func: Task | str, iterable: Iterable[Sequence[Any]], chunksize: int | None = None
    ) -> list[Any]:
        return list(self._ordered(func, ((a, None) for a in iterable), chunksize))

    def map_async(
        self,
        func: Task | str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult:
        return self._async(self.map, func, iterable, chunksize, callback, error_callback)

    def starmap_async(
        self,
        func: Task | str,
        iterable: Iterable[Sequence[Any]],
        chunksize: int | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult:
        return self._async(self.starmap, func, iterable, chunksize, callback, error_callback)

    def imap(
        self, func: Task | str, iterable: Iterable[Any], chunksize: int | None = None
    ) -> Iterator[Any]:
        """In order; streams: at most `max_pending` tasks are out at once."""
        return self._ordered(func, (((x,), None) for x in iterable), chunksize)

    def imap_unordered(
        self, func: Task | str, iterable: Iterable[Any], chunksize: int | None = None
    ) -> Iterator[Any]:
        """As they come; streams as `imap` does."""
        landed: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        out = 0
        for future in self._stream(func, (((x,), None) for x in iterable), chunksize):
            future.add_done_callback(landed.put)
            out += 1
            while out and (out >= self._window or not landed.empty()):
                out -= 1
                yield landed.get().result()
        for _ in range(out):
            yield landed.get().result()

    def _ordered(
        self, func: Task | str, calls: Iterable[Call], chunksize: int | None
    ) -> Iterator[Any]:
        """In order, sending ahead of the reader by at most `max_pending` tasks."""
        window: collections.deque[Future[Any]] = collections.deque()
        for future in self._stream(func, calls, chunksize):
            window.append(future)
            while window and (window[0].done() or len(window) >= self._window):
                yield window.popleft().result()
        while window:
            yield window.popleft().result()

    def _stream(
        self, func: Task | str, calls: Iterable[Call], chunksize: int | None
    ) -> Iterator[Future[Any]]:
        """A future per call, in order; sends a chunk at a time as the futures are read."""
        self._open()
        size = chunksize or AUTO_CHUNK
        it = iter(calls)
        while batch := list(itertools.islice(it, size)):
            futures: list[Future[Any]] = [Future() for _ in batch]
            self._caller.send(func, batch, [_settle(f) for f in futures])
            yield from futures

    def _async(
        self,
        run: Callable[..., list[Any]],
        func: Task | str,
        iterable: Iterable[Any],
        chunksize: int | None,
        callback: Callable[[Any], object] | None,
        error_callback: Callable[[BaseException], object] | None,
    ) -> AsyncResult:
        future: Future[Any] = Future()
        _notify(future, callback, error_callback)

        def work() -> None:
            try:
                future.set_result(run(func, iterable, chunksize))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                future.set_exception(exc)

        threading.Thread(target=work, name="redpool-map-async", daemon=True).start()
        return AsyncResult(future)

    # -- the end -------------------------------------------------------------------------

    def _open(self) -> None:
        if self._closed:
            raise ValueError("Pool not running")

    def close(self) -> None:
        """No more tasks; those sent still finish (`join` waits for them)."""
        self._closed = True

    def join(self) -> None:
        if not self._closed:
            raise ValueError("Pool is still running")
        self._caller.wait_idle()
        self._caller.close()

    def terminate(self) -> None:
        """Stop at once: the answers not yet here are dropped."""
        self._closed = True
        self._caller.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.terminate()  # as multiprocessing.Pool does


def _settle(future: Future[Any]) -> Callable[[dict[str, Any]], None]:
    def answer(body: dict[str, Any]) -> None:
        if body.get("ok"):
            future.set_result(body.get("value"))
        else:
            future.set_exception(error_of(body))

    return answer


def _notify(
    future: Future[Any],
    callback: Callable[[Any], object] | None,
    error_callback: Callable[[BaseException], object] | None,
) -> None:
    def done(f: Future[Any]) -> None:
        exc = f.exception()
        if exc is None:
            if callback is not None:
                callback(f.result())
        elif error_callback is not None:
            error_callback(exc)

    future.add_done_callback(done)
