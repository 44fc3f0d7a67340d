"""Producer: submit tasks in chunks and batches, with backpressure, exactly once.

Tasks go out as chunks (many tasks of one name in one element of the tasks list) and chunks
in batches (many elements in one push). With ``chunksize="auto"`` a chunk holds about
`CHUNK_SECONDS` of work, by the time per task the workers last measured for that task name
(push.lua hands it back with every push); while nothing is known yet, chunks are small.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final, Literal, TypeVar, cast

from redpool import codec
from redpool.codec import NotJSON
from redpool.envelope import (
    MAX_CHUNK,
    MAX_PAYLOAD,
    encode_listed,
    encode_listed_json,
    encode_run,
    encode_run_json,
    encode_task,
    encode_task_json,
)
from redpool.errors import PayloadError, RedpoolError, StreamClosed
from redpool.keys import DEFAULT_PIPELINE, check_shards, instance_id
from redpool.pipeline import MAX_BATCH, Pipeline, RedisTarget
from redpool.registry import Task
from redpool.settings import require, require_range

log = logging.getLogger("redpool.producer")

Call = tuple[list[Any] | tuple[Any, ...], dict[str, Any] | None]
"""(args, kwargs) of one task; kwargs may be None or empty."""
JsonCall = tuple[bytes, bytes | None]
"""(args, kwargs) of one task as JSON already written: an array, and an object or None."""
Chunksize = int | Literal["auto"]

CHUNK_SECONDS = 0.05
"""``auto``: the work one chunk holds; long enough that a chunk's own cost (a few Redis
operations, a parse, a commit) is small beside it, short enough to spread over processes."""
FIRST_CHUNK = 8
"""``auto``: tasks per chunk while no worker has timed the task yet."""
MAX_AUTO_CHUNK = 2500
"""``auto``: past this, bigger chunks save nothing measurable and delay the first answers."""
CHUNK_BYTES = 1 << 20
"""Most bytes of a chunk (of more than one task), whatever its count: big tasks make small
chunks."""


class Flush:
    def __repr__(self) -> str:
        return "FLUSH"


FLUSH: Final = Flush()
"""Yielded by an input in place of a task when it has nothing more for now (a quiet pipe):
the tasks gathered so far go out at once instead of waiting for a full batch."""

T = TypeVar("T")


@dataclass(frozen=True)
class ProducerSettings:
    max_backlog: int | None = None
    """Block while the queue holds more tasks than this (about: it is counted in chunks of
    the size being sent): bounds Redis memory."""
    batch_size: int = 1000
    """Tasks per push: one round trip each."""
    chunksize: Chunksize = "auto"
    """Tasks per element of the tasks list; 1 sends single tasks; ``auto`` sizes chunks to
    about `CHUNK_SECONDS` of work each."""
    linger: float = 0.1
    """Seconds a partial batch waits for more tasks before it goes out anyway, so a slow
    stream's tasks start at once rather than when a batch fills. For ``redpool produce``'s
    input, once no line came for that long; for an iterable handed to `Producer.map` or
    `submit_many`, once its next item comes that long after the batch's first (an iterable
    that blocks holds its partial batch until it yields)."""
    lease: float = 30.0
    """Seconds without a heartbeat (sent every third of it) after which the producer is
    presumed dead: its part of the stream is closed (abandoned) and its tasks complete."""
    shards: int | None = None
    """Shards of the pipeline (``--shards``): creates a pipeline of that many when there is
    none, and is refused when it has another number. None: as many as it has (one when it is
    new)."""

    def __post_init__(self) -> None:
        require_range("batch_size", self.batch_size, 1, MAX_BATCH)
        check_shards(self.shards)
        require(0 < self.linger <= 60, "linger", f"must be in (0, 60] s, not {self.linger:g}")
        require(self.lease >= 3, "lease", f"must be at least 3 s, not {self.lease:g}")
        require(
            self.max_backlog is None or self.max_backlog >= 1,
            "max_backlog",
            f"must be at least 1, not {self.max_backlog}",
        )
        require(
            self.chunksize == "auto"
            or (isinstance(self.chunksize, int) and 1 <= self.chunksize <= MAX_CHUNK),
            "chunksize",
            f"must be 'auto' or 1..{MAX_CHUNK}, not {self.chunksize!r}",
        )


class Producer:
    """Pushes tasks to one pipeline. Use as a context manager, or call ``close()``.

    Joining happens here, at construction: this producer joins the pipeline's current run
    (or starts the next one), and from now on the stream stays open until it leaves: it
    closes (all submitted), aborts (an error or a signal; the ``with`` block does this when
    an exception leaves it), or its lease runs out (it died). A thread renews the lease.
    """

    def __init__(
        self,
        redis: RedisTarget = None,
        pipeline: str = DEFAULT_PIPELINE,
        settings: ProducerSettings | None = None,
    ) -> None:
        self.settings = settings or ProducerSettings()
        self.pipe = Pipeline.connect(redis, pipeline, log=log, shards=self.settings.shards)
        self.id = instance_id()
        self.submitted = 0
        self._id_prefix = f"{self.id}-"
        self._id_json = codec.dumps(self.id)[:-1] + b"-"  # '"<id>-': ids are made by appending
        self._pace: dict[str, float] = {}
        self._batch = 0
        self._closed = False
        self.run, _ = self.pipe.join(self.id, self.settings.lease)
        """The id of the run this producer is part of."""
        self._left = threading.Event()
        self._heart = threading.Thread(target=self._heartbeat, name="redpool-lease", daemon=True)
        self._heart.start()

    def _heartbeat(self) -> None:
        """Renew the lease every third of it until the producer leaves; a renewal refused
        (called abandoned after a stall) is logged, and the next push raises."""
        while not self._left.wait(self.settings.lease / 3):
            try:
                if not self.pipe.renew(self.id, self.settings.lease):
                    log.error("producer %s is no longer part of run %d", self.id, self.run)
                    return
            except RedpoolError as exc:  # Redis refused; the pushes will say so too
                log.error("producer %s could not renew its lease: %s", self.id, exc)

    def submit(self, task: Task | str, /, *args: Any, **kwargs: Any) -> str:
        """Push one task now, as a single task; returns its id."""
        name = _name(task)
        task_id = self._next_id()
        element = encode_task(task_id, name, args, kwargs, self.id)
        _check_size(element, 1, self.submitted)
        self._push(name, [element], 1)
        return task_id

    def map(
        self, task: Task | str, iterable: Iterable[Any], chunksize: Chunksize | None = None
    ) -> int:
        """One task per item (the item is its one argument), pushed in chunks; streams."""
        calls = (((item,), None) for item in iterable)
        return self._submit(task, calls, chunksize, timed=not isinstance(iterable, Sized))

    def submit_many(
        self,
        task: Task | str,
        calls: Iterable[tuple[list[Any] | tuple[Any, ...], dict[str, Any] | None]],
        chunksize: Chunksize | None = None,
    ) -> int:
        """One task per ``(args, kwargs)``, in chunks and batches; returns how many.

        Streams: one batch at a time is in memory, whatever the size of ``calls``. Raises
        PayloadError, naming the task, for arguments JSON cannot hold; the batches before it
        were sent."""
        return self._submit(task, calls, chunksize, timed=not isinstance(calls, Sized))

    def _submit(
        self,
        task: Task | str,
        calls: Iterable[tuple[list[Any] | tuple[Any, ...], dict[str, Any] | None]],
        chunksize: Chunksize | None,
        timed: bool,
    ) -> int:
        name = _name(task)
        count = 0
        for batch in self._batches(calls, lambda: self._batch_tasks(name, chunksize), timed):
            count += self._send(name, batch, chunksize)
        return count

    def submit_json(
        self,
        task: Task | str,
        calls: Iterable[JsonCall | Flush],
        chunksize: Chunksize | None = None,
    ) -> int:
        """`submit_many` for arguments already written as JSON (checked by the caller): they
        go into the chunks as they are, never parsed and written again. `FLUSH` among them
        sends the tasks gathered so far at once."""
        name = _name(task)
        count = 0
        for batch in self._batches(calls, lambda: self._batch_tasks(name, chunksize)):
            count += self._send_json(name, batch, chunksize)
        return count

    def _batches(
        self, items: Iterable[T | Flush], size: Callable[[], int], timed: bool = True
    ) -> Iterator[list[T]]:
        """``items`` in batches of ``size()``; a partial batch goes out when the input says
        `FLUSH`, or when the next item comes `linger` seconds or more after its first.

        Not ``timed``: a collection in memory, which cannot keep anyone waiting, is cut into
        batches by islice, without a clock read and a check per item (0.1 µs of the
        producer's 0.4 µs per task)."""
        if not timed:
            rest = cast(Iterator[T], iter(items))  # no FLUSH: only line inputs hold them
            while cut := list(islice(rest, size())):
                yield cut
            return
        linger = self.settings.linger
        batch: list[T] = []
        limit, first = size(), 0.0
        for item in items:
            if isinstance(item, Flush):
                if batch:
                    yield batch
                    batch, limit = [], size()
                continue
            if not batch:
                first = time.monotonic()
            batch.append(item)
            if len(batch) >= limit or (linger and time.monotonic() - first >= linger):
                yield batch
                batch, limit = [], size()
        if batch:
            yield batch

    def close(self) -> None:
        """End this producer's part of the stream: all it meant to submit is submitted
        (idempotent)."""
        self._leave(self.pipe.close, self.id)

    def abort(self, why: str) -> None:
        """End this producer's part of the stream short (an error, a signal): what it
        submitted still runs, and the run ends incomplete (idempotent)."""
        log.warning("producer %s aborted: %s", self.id, why)
        self._leave(self.pipe.abort, self.id, why)

    def _leave(self, how: Callable[..., bool], *args: str) -> None:
        if not self._closed:
            self._closed = True
            self._left.set()
            how(*args)

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort(_why(kind, exc))

    # -- chunks and batches ------------------------------------------------------------------

    def chunksize(self, name: str, asked: Chunksize | None = None) -> int:
        """Tasks per chunk for task ``name`` now: as asked, as set, or sized by its pace."""
        size = asked if asked is not None else self.settings.chunksize
        if size != "auto":
            return size
        pace = self._pace.get(name)
        if pace is None:
            return FIRST_CHUNK
        return max(1, min(MAX_AUTO_CHUNK, round(CHUNK_SECONDS * 1e6 / max(pace, 0.01))))

    def _batch_tasks(self, name: str, asked: Chunksize | None) -> int:
        return min(
            max(self.settings.batch_size, self.chunksize(name, asked)),
            MAX_BATCH * self.chunksize(name, asked),
        )

    def _send(self, name: str, calls: list[Call], asked: Chunksize | None) -> int:
        """One batch: single tasks, runs, or (with keyword arguments) listed chunks."""
        prefix, me = self._id_prefix, self.id

        def item(n: int, args: Any, kwargs: Any) -> list[Any]:
            return [f"{prefix}{n}", args, kwargs] if kwargs else [f"{prefix}{n}", args]

        shapes = _Shapes(
            single=lambda n, a, k: encode_task(f"{prefix}{n}", name, a, k or {}, me),
            item=item,
            listed=lambda items: encode_listed(name, me, items),
            run=lambda first, args: encode_run(name, me, first, args),
        )
        try:
            return self._push_shaped(name, calls, asked, shapes)
        except NotJSON:
            raise _which(calls, self.submitted - len(calls) + 1) from None

    def _send_json(self, name: str, calls: list[JsonCall], asked: Chunksize | None) -> int:
        """`_send` for arguments already written as JSON: joined, never parsed."""
        prefix, me = self._id_json, self.id

        def item(n: int, args: bytes, kwargs: bytes | None) -> bytes:
            task_id = b'%s%d"' % (prefix, n)
            return (
                b"[%b,%b,%b]" % (task_id, args, kwargs) if kwargs else b"[%b,%b]" % (task_id, args)
            )

        shapes = _Shapes(
            single=lambda n, a, k: encode_task_json(b'%s%d"' % (prefix, n), name, a, k, me),
            item=item,
            listed=lambda items: encode_listed_json(name, me, items),
            run=lambda first, args: encode_run_json(name, me, first, args),
        )
        return self._push_shaped(name, calls, asked, shapes)

    def _push_shaped(
        self, name: str, calls: list[Any], asked: Chunksize | None, shapes: _Shapes
    ) -> int:
        size, first = self.chunksize(name, asked), self.submitted + 1
        self.submitted += len(calls)
        numbered = list(enumerate(calls, first))
        make: Callable[[int, int], bytes]
        if size == 1:
            elements = [shapes.single(n, a, k) for n, (a, k) in numbered]
            for at, element in enumerate(elements):
                _check_size(element, 1, first + at)
        else:
            if any(kwargs for _, kwargs in calls):
                items = [shapes.item(n, a, k) for n, (a, k) in numbered]

                def make(lo: int, hi: int) -> bytes:
                    return shapes.listed(items[lo:hi])
            else:

                def make(lo: int, hi: int) -> bytes:
                    return shapes.run(first + lo, [a for a, _ in calls[lo:hi]])

            elements = []
            for lo in range(0, len(calls), size):
                elements += _fitted(make, lo, min(lo + size, len(calls)), first)
        self._push(name, elements, len(calls))
        return len(calls)

    def _next_id(self) -> str:
        self.submitted += 1
        return f"{self._id_prefix}{self.submitted}"

    def _push(self, name: str, elements: list[bytes], tasks: int) -> None:
        if self._closed:
            raise StreamClosed(f"producer {self.id} is closed")
        self._batch += 1
        lease = self.settings.lease
        backlog, pace = self.pipe.push(self.id, self._batch, elements, tasks, name, lease)
        if pace is not None:
            self._pace[name] = pace
        self._wait_for_room(backlog, max(1, tasks // len(elements)))

    def _wait_for_room(self, backlog: int, per_element: int) -> None:
        """Block while the backlog is over ``max_backlog``: bounds Redis memory."""
        limit = self.settings.max_backlog
        if limit is None:
            return
        delay = 0.002
        while backlog * per_element > limit:
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
            backlog = self.pipe.backlog()


@dataclass(frozen=True)
class _Shapes:
    """How one batch's tasks are written as each shape of element: from Python objects, or
    from JSON already written."""

    single: Callable[[int, Any, Any], bytes]
    item: Callable[[int, Any, Any], Any]
    listed: Callable[[list[Any]], bytes]
    run: Callable[[int, list[Any]], bytes]


def _fitted(make: Callable[[int, int], bytes], lo: int, hi: int, first: int) -> list[bytes]:
    """The chunk of tasks ``lo``..``hi`` (of a batch whose first task is number ``first``),
    halved until each element is at most `CHUNK_BYTES`: a chunk of big tasks stays an
    element every worker takes (a worker refuses one over its payload limit)."""
    element = make(lo, hi)
    if len(element) <= CHUNK_BYTES or hi - lo == 1:
        _check_size(element, hi - lo, first + lo)
        return [element]
    middle = (lo + hi) // 2
    return _fitted(make, lo, middle, first) + _fitted(make, middle, hi, first)


def _check_size(element: bytes, tasks: int, number: int) -> None:
    """A task no worker would take (over `MAX_PAYLOAD`) is refused here, with its number,
    instead of being dead-lettered where nobody can answer it."""
    if tasks == 1 and len(element) > MAX_PAYLOAD:
        raise PayloadError(
            b"",
            f"task number {number} is {len(element):,} bytes as JSON; the limit is {MAX_PAYLOAD:,}",
        )


def _why(kind: type[BaseException], exc: BaseException | None) -> str:
    """An exception as the reason a producer aborted."""
    if issubclass(kind, KeyboardInterrupt):
        return "interrupted"
    return f"{kind.__name__}: {exc}" if str(exc) else kind.__name__


def _name(task: Task | str) -> str:
    return task.name if isinstance(task, Task) else task


def _which(calls: list[Call], first: int) -> PayloadError:
    """Which task of a batch JSON cannot hold, for the error."""
    for number, call in enumerate(calls, first):
        try:
            codec.dumps(call)
        except NotJSON as exc:
            return PayloadError(b"", f"task number {number} cannot be sent: {exc}")
    return PayloadError(b"", "a task of this batch cannot be sent as JSON")
