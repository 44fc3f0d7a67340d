"""The caller: what `Pool` and `Executor` share. It sends tasks that name it in ``reply``,
holds a lease, and drains its own reply list in a thread, handing each answer to the one who
waits for that task id.

Its tasks are runs and listed chunks as a producer's (ids ``<caller id>-<n>``), but it is
not a producer of the pipeline's run: its answers never reach the sink, so a run neither
waits for them nor counts them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redpool import codec
from redpool.answers import parse_results
from redpool.envelope import MAX_CHUNK, MAX_PAYLOAD
from redpool.errors import PayloadError, RedpoolError
from redpool.keys import DEFAULT_PIPELINE, instance_id
from redpool.pipeline import Pipeline, RedisTarget
from redpool.registry import Task
from redpool.settings import require

log = logging.getLogger("redpool.pool")

Answer = Callable[[int, dict[str, Any]], None]
"""Called with a task's index (as `Caller.send` was told) and its answer (``{"id", "ok",
"value" | "error", ...}``), in the caller's drain thread."""


@dataclass(frozen=True)
class CallerSettings:
    lease: float = 30.0
    """Seconds without a heartbeat (sent every third of it) after which the caller is gone:
    worker hosts drop its reply list and every answer in it."""
    max_pending: int = 100_000
    """Tasks sent and not yet answered, at most: sending more waits (bounded memory, and a
    queue no deeper than the caller can use)."""

    def __post_init__(self) -> None:
        require(self.lease >= 3, "lease", f"must be at least 3 s, not {self.lease:g}")
        require(self.max_pending >= 1, "max_pending", f"must be >= 1, not {self.max_pending}")


class CallerGone(RedpoolError):
    """The caller's lease ran out (it stalled, or lost Redis for longer than its lease) and
    worker hosts dropped its answers: what it waits for will not come."""


class Caller:
    def __init__(
        self,
        redis: RedisTarget = None,
        pipeline: str = DEFAULT_PIPELINE,
        settings: CallerSettings | None = None,
    ) -> None:
        self.settings = settings or CallerSettings()
        self.pipe = Pipeline.connect(redis, pipeline, log=log)
        self.id = instance_id()
        self.shard = self.pipe.caller_shard(self.id)
        """A caller keeps to one shard of a sharded pipeline: its answers come back there."""
        self._waiting: dict[str, tuple[Answer, int]] = {}
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._sent = 0
        self._stop = threading.Event()
        self.gone: BaseException | None = None
        self.shard.call_renew(self.id, self.settings.lease, joining=True)
        self._threads = [
            threading.Thread(target=self._drain, name="redpool-replies", daemon=True),
            threading.Thread(target=self._heartbeat, name="redpool-caller", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        task: Task | str,
        calls: Sequence[tuple[Sequence[Any], dict[str, Any] | None]],
        answer: Answer,
        index: int = 0,
    ) -> tuple[list[str], bytes]:
        """One element of the tasks list for ``calls`` (a run, or a listed chunk when some
        have keyword arguments); ``answer(index + i, body)`` gets call i's answer (registered
        before the element is sent: an answer may come before this returns). Returns their
        ids and the element as sent (what `cancel` takes back). Waits while `max_pending`
        tasks are unanswered."""
        name = task.name if isinstance(task, Task) else task
        with self._room:
            while len(self._waiting) + len(calls) > max(self.settings.max_pending, len(calls)):
                self._check()
                self._room.wait(0.5)
            self._check()
            first = self._sent + 1
            self._sent += len(calls)
            ids = [f"{self.id}-{first + i}" for i in range(len(calls))]
            self._waiting.update((t, (answer, index + i)) for i, t in enumerate(ids))
        try:
            element = self._element(name, first, ids, calls)
            self.shard.call_push([element])
        except BaseException:
            self._forget(ids)
            raise
        return ids, element

    def _element(
        self,
        name: str,
        first: int,
        ids: list[str],
        calls: Sequence[tuple[Sequence[Any], dict[str, Any] | None]],
    ) -> bytes:
        """The element for ``calls``: a run, or a listed chunk when some have keyword
        arguments; refused here (its waiters forgotten) when not JSON or over the workers'
        size limit, which would make it dead without an answer this caller could read."""
        try:
            element = codec.dumps(self._body(name, first, ids, calls))
        except codec.NotJSON as exc:
            self._forget(ids)
            raise PayloadError(b"", f"an argument of {name!r} is not JSON: {exc}") from None
        if len(element) > MAX_PAYLOAD:
            self._forget(ids)
            raise PayloadError(
                b"",
                f"{len(calls)} task(s) of {name!r} make {len(element):,} bytes, over the "
                f"workers' limit of {MAX_PAYLOAD:,}: smaller arguments, or a smaller chunksize",
            )
        return element

    def _body(
        self,
        name: str,
        first: int,
        ids: list[str],
        calls: Sequence[tuple[Sequence[Any], dict[str, Any] | None]],
    ) -> dict[str, Any]:
        body: dict[str, Any]
        if all(not kwargs for _, kwargs in calls):
            body = {
                "n": len(calls),
                "task": name,
                "producer": self.id,
                "first": first,
                "args": [list(args) for args, _ in calls],
            }
        else:
            items = [[i, list(a), k or {}] for i, (a, k) in zip(ids, calls, strict=True)]
            body = {"n": len(calls), "task": name, "producer": self.id, "items": items}
        body["reply"] = self.id
        return body

    def chunks(
        self, calls: Sequence[tuple[Sequence[Any], dict[str, Any] | None]], size: int
    ) -> list[Sequence[tuple[Sequence[Any], dict[str, Any] | None]]]:
        size = max(1, min(size, MAX_CHUNK))
        return [calls[i : i + size] for i in range(0, len(calls), size)]

    def cancel(self, task_id: str, element: bytes) -> bool:
        """Take ``element`` (one task's) off the queue if no worker took it yet."""
        if not self.shard.call_cancel(element):
            return False
        self._forget([task_id])
        return True

    def _forget(self, ids: list[str]) -> None:
        with self._room:
            for task_id in ids:
                self._waiting.pop(task_id, None)
            self._room.notify_all()

    def _check(self) -> None:
        if self.gone is not None:
            raise CallerGone(f"caller {self.id}: {self.gone}")

    # -- receiving -----------------------------------------------------------------------

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                taken = self.shard.take_replies(self.id, 1000, 0.5)
                if not taken.held:
                    continue
                for raw in taken.held:
                    try:
                        self._deliver(raw)
                    except Exception as exc:  # noqa: BLE001 - one bad answer, not the caller
                        log.error("caller %s: an answer could not be handed on: %s", self.id, exc)
                self.shard.ack_replies(self.id, taken)
            except Exception as exc:  # noqa: BLE001 - the waiters hear of it, not a trace
                self._fail(exc)
                return

    def _deliver(self, raw: bytes) -> None:
        """An element's answers to those who wait for them: parsed in one call (a chunk's
        answers are one JSON document), handed on under one lock."""
        bodies = _answers(raw)
        with self._room:
            found = [(self._waiting.pop(str(b.get("id")), None), b) for b in bodies]
            self._room.notify_all()
        for waiter, body in found:
            if waiter is None:  # a second answer (a task run twice): the first won
                continue
            try:
                waiter[0](waiter[1], body)
            except Exception as exc:  # noqa: BLE001 - a callback's error is its own
                log.error("caller %s: a callback failed: %s", self.id, exc)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.lease / 3):
            try:
                if not self.shard.call_renew(self.id, self.settings.lease):
                    self._fail(CallerGone("its lease ran out and its answers were dropped"))
                    return
            except Exception as exc:  # noqa: BLE001
                log.error("caller %s could not renew its lease: %s", self.id, exc)

    def _fail(self, exc: BaseException) -> None:
        """Every task still waiting hears ``exc``: nothing will answer them now."""
        with self._room:
            self.gone = exc
            waiting, self._waiting = self._waiting, {}
            self._room.notify_all()
        for task_id, (answer, index) in waiting.items():
            answer(index, {"id": task_id, "ok": False, "error": _gone(exc)})

    # -- ending --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._waiting)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until every task sent has its answer (or the caller is gone)."""
        with self._room:
            return self._room.wait_for(lambda: not self._waiting or self.gone is not None, timeout)

    def close(self) -> None:
        """Leave: the lease and every answer still waiting in Redis go. Tasks not yet run
        are run still, their answers written to a reply list nobody reads, which expires."""
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():  # closed from an answer's callback
                thread.join()
        try:
            self.shard.call_leave(self.id)
        finally:
            self._fail(CallerGone("the caller was closed"))
            self.pipe.disconnect()


def _answers(raw: bytes) -> list[dict[str, Any]]:
    """The answers an element of a reply list holds: one result, or a chunk's."""
    try:
        body = codec.loads(raw)
    except codec.JSONDecodeError:
        return [envelope.body for envelope in parse_results(raw).results()]
    if isinstance(body, dict) and isinstance(body.get("results"), list) and "n" in body:
        return [b for b in body["results"] if isinstance(b, dict)]
    return [body] if isinstance(body, dict) else []


def _gone(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc), "traceback": ""}
