"""`Pool`: `multiprocessing.Pool`'s methods, run by the worker hosts of a pipeline.

A script written for ``multiprocessing.Pool(4)`` runs with ``redpool.Pool(redis=URL)``
instead: the function is a registered ``@task`` (the object or its name), its arguments and
results are JSON, and every host running ``redpool worker`` on the pipeline does the work.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from redpool.keys import DEFAULT_PIPELINE
from redpool.pipeline import RedisTarget
from redpool.pool.caller import Caller, CallerSettings
from redpool.pool.remote import error_of, settle
from redpool.registry import Task

Call = tuple[Sequence[Any], dict[str, Any] | None]
MAX_AUTO = 2500
"""Most tasks a map's chunk holds when it sizes them itself (bigger ones save nothing)."""


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
        self._caller.send(func, [(args, kwds or None)], _one(future))
        return AsyncResult(future)

    # -- many calls ----------------------------------------------------------------------

    def map(
        self, func: Task | str, iterable: Iterable[Any], chunksize: int | None = None
    ) -> list[Any]:
        """The input is read whole first (as multiprocessing does), and cut into chunks of
        about an eighth of a host's share of it unless ``chunksize`` says otherwise."""
        return self._gather(func, [((x,), None) for x in iterable], chunksize)

    def starmap(
        self, func: Task | str, iterable: Iterable[Sequence[Any]], chunksize: int | None = None
    ) -> list[Any]:
        return self._gather(func, [(a, None) for a in iterable], chunksize)

    def _gather(self, func: Task | str, calls: list[Call], chunksize: int | None) -> list[Any]:
        """A whole map: each answer written straight into its place (no future per task);
        the first error by position is raised once it is in."""
        self._open()
        out: list[Any] = [None] * len(calls)
        failed: list[tuple[int, BaseException]] = []
        left = [len(calls)]
        done = threading.Condition()

        def answer(index: int, body: dict[str, Any]) -> None:
            if body.get("ok"):
                out[index] = body.get("value")
            else:
                failed.append((index, error_of(body)))
            with done:
                left[0] -= 1
                if not left[0] or failed:
                    done.notify()

        size = chunksize or _chunksize(len(calls))
        for start in range(0, len(calls), size):
            if failed:
                break
            self._caller.send(func, calls[start : start + size], answer, start)
        with done:
            done.wait_for(lambda: not left[0] or bool(failed))
        if failed:
            raise min(failed, key=lambda f: f[0])[1]
        return out

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

    def imap(self, func: Task | str, iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """In order. Streams: a thread reads the input and sends it (``chunksize`` tasks an
        element, 1 by default as for multiprocessing), staying at most `max_pending` tasks
        ahead of the reader; an answer is yielded as soon as it and those before it are in."""
        return self._ordered(func, (((x,), None) for x in iterable), chunksize)

    def imap_unordered(
        self, func: Task | str, iterable: Iterable[Any], chunksize: int = 1
    ) -> Iterator[Any]:
        """As they come; streams as `imap` does."""
        landed: queue.SimpleQueue[Future[Any] | _Sent] = queue.SimpleQueue()
        stop = threading.Event()
        self._send_all(func, (((x,), None) for x in iterable), chunksize, landed, stop, True)
        total, yielded = None, 0
        try:
            while total is None or yielded < total:
                got = landed.get()
                if isinstance(got, _Sent):
                    if got.error is not None:
                        raise got.error
                    total = got.count
                    continue
                yielded += 1
                yield got.result()
        finally:
            stop.set()

    def _ordered(self, func: Task | str, calls: Iterable[Call], chunksize: int) -> Iterator[Any]:
        sent: queue.Queue[Future[Any] | _Sent] = queue.Queue(self._window)
        stop = threading.Event()
        self._send_all(func, calls, chunksize, sent, stop, False)
        try:
            while not isinstance(got := sent.get(), _Sent):
                yield got.result()
            if got.error is not None:
                raise got.error
        finally:
            stop.set()

    def _send_all(
        self,
        func: Task | str,
        calls: Iterable[Call],
        chunksize: int,
        out: queue.Queue[Future[Any] | _Sent] | queue.SimpleQueue[Future[Any] | _Sent],
        stop: threading.Event,
        on_answer: bool,
    ) -> None:
        """In a thread: read ``calls``, send them ``chunksize`` a time, and hand on a future per
        call, in order as sent (or, with ``on_answer``, as each is answered); last a `_Sent`
        saying how many, or what went wrong. Stops early once ``stop`` is set (the reader
        went away)."""
        self._open()
        size = max(1, chunksize)

        def put(item: Future[Any] | _Sent) -> None:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def send() -> None:
            count = 0
            try:
                it = iter(calls)
                while not stop.is_set() and (batch := list(itertools.islice(it, size))):
                    futures: list[Future[Any]] = [Future() for _ in batch]
                    self._caller.send(func, batch, _each(futures))
                    count += len(futures)
                    for future in futures:
                        if on_answer:
                            future.add_done_callback(out.put)
                        else:
                            put(future)
            except BaseException as exc:  # noqa: BLE001 - raised in the reader's thread
                put(_Sent(count, exc))
                return
            put(_Sent(count))

        threading.Thread(target=send, name="redpool-pool-send", daemon=True).start()

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


@dataclass(frozen=True)
class _Sent:
    """The sender thread is done: ``count`` tasks sent, or ``error`` stopped it."""

    count: int
    error: BaseException | None = None


def _chunksize(n: int) -> int:
    """As multiprocessing sizes a map's chunks (a quarter of each process's share), for 8
    processes, within what a chunk may hold."""
    return max(1, min(MAX_AUTO, -(-n // 32)))


def _one(future: Future[Any]) -> Callable[[int, dict[str, Any]], None]:
    settle = _settle(future)
    return lambda _index, body: settle(body)


def _each(futures: list[Future[Any]]) -> Callable[[int, dict[str, Any]], None]:
    """``send``'s answer for a batch of futures, the batch's calls indexed from 0."""
    return lambda index, body: _settle(futures[index])(body)


def _settle(future: Future[Any]) -> Callable[[dict[str, Any]], None]:
    return lambda body: settle(future, body)


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
