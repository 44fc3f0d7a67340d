"""Sink: drain results in batches, hand each to a handler, know when the stream is done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redpool.answers import ResultEnvelope, one_line, parse_result, parse_results
from redpool.errors import SinkLeaseLost
from redpool.keys import (
    COMPLETE,
    DEFAULT_PIPELINE,
    INCOMPLETE,
    RUNNING,
    check_shards,
    instance_id,
)
from redpool.pipeline import MAX_BATCH, Pipeline, RedisTarget
from redpool.settings import MAX_BLOCK, require, require_range
from redpool.sink.outputs import Resumable
from redpool.state import CLOSED_STATE, OPEN, ProducerInfo

STOPPED, NO_RUN = "stopped", "no run"

log = logging.getLogger("redpool.sink")

Handler = Callable[[ResultEnvelope], None]


@dataclass(frozen=True)
class SinkSettings:
    batch_size: int = 1000
    """Answers taken (and acknowledged) at a time, about: whole elements are taken, and one
    chunk's answers may be more."""
    block_seconds: float = 0.5
    """How long an idle sink waits for a result before it looks at its stop flag."""
    lease: float = 10.0
    """Seconds a sink holds the pipeline without renewing (it renews every third of it); a
    standby takes over this long after a sink died."""
    wait_for_run: bool = True
    """Started when no run is in progress (the last one ended, or none began): wait for the
    next one to start and drain it, rather than return at once."""

    shards: int | None = None
    """Shards of the pipeline (``--shards``): creates a pipeline of that many when there is
    none (a sink started before any other role), and is refused when it has another number.
    None: as many as it has."""

    def __post_init__(self) -> None:
        check_shards(self.shards)
        require_range("batch_size", self.batch_size, 1, MAX_BATCH)
        require(self.lease >= 1, "lease", f"must be at least 1 s, not {self.lease:g}")
        longest = min(MAX_BLOCK, self.lease / 3)
        require(
            0 < self.block_seconds <= longest,
            "block_seconds",
            f"must be in (0, {longest:g}] (a third of the lease at most), "
            f"not {self.block_seconds:g}",
        )


@dataclass
class Summary:
    """What a sink did, and how its run ended."""

    ok: int = 0
    failed: int = 0
    run: int | None = None
    """The run it drained (the last one, when following)."""
    outcome: str = STOPPED
    """`COMPLETE` or `INCOMPLETE` (the run ended), `STOPPED` (told to stop, or following,
    before it ended) or `NO_RUN` (none in progress, and told not to wait)."""
    short: list[ProducerInfo] = field(default_factory=list)
    """The producers that aborted or were abandoned, when the run ended incomplete."""

    @property
    def total(self) -> int:
        return self.ok + self.failed

    @property
    def complete(self) -> bool:
        return self.outcome == COMPLETE


FIRST_TAKE = 8
"""Elements of the first take, before the sink knows how many answers an element holds."""


class Sink:
    """Drains one pipeline's results. One sink per pipeline (it owns the ``sinking`` list).

    A result is acknowledged (removed from ``sinking``) only after the handler returned for
    its whole batch, so a sink that dies re-delivers that batch when it restarts: handlers
    see every result at least once, and exactly once unless the sink itself crashes.
    """

    def __init__(
        self,
        redis: RedisTarget = None,
        pipeline: str = DEFAULT_PIPELINE,
        handler: Handler | None = None,
        *,
        flush: Callable[[], None] | None = None,
        settings: SinkSettings | None = None,
    ) -> None:
        self.settings = settings or SinkSettings()
        self.pipe = Pipeline.connect(redis, pipeline, log=log, shards=self.settings.shards)
        self.handler = handler or (lambda _result: None)
        self._lines: Callable[[list[bytes]], None] | None = getattr(handler, "write_lines", None)
        """A handler that takes a chunk's lines at once (JSON Lines output) is given them so."""
        self.flush = flush
        self.summary = Summary()
        self.stopping = False
        self.id = instance_id()
        self._renewed = 0.0
        self._submitted = self._drained = 0  # as last read from Redis, plus our own acks
        self._members: dict[str | None, bool] = {}
        """Producer id -> whether it joined the current run, as asked once per id (`_counts`)."""
        self._per_element = max(1, self.settings.batch_size // FIRST_TAKE)
        """Answers per element of the results list lately: a take is sized in answers. Until
        the first take, elements may be chunks (of thousands): take a few, not a batch of
        them, which for a sink started on a long list would be hundreds of MB at once."""

    def run(self, follow: bool = False) -> Summary:
        """Drain one run: until every producer of the pipeline's current run has left and
        every task it submitted has its result; then mark the run ended and return. Started
        between runs, wait for the next one (unless ``wait_for_run`` is off).

        With ``follow``, keep draining, run after run, until ``stopping`` is set. Holds the
        pipeline's sink lease while it runs; a second sink waits as a standby until the lease
        is free (a dead sink's runs out after ``lease`` seconds).
        """
        self._hold_lease()
        try:
            if self.stopping:
                return self.summary
            self._resume_output()
            if not self._find_run(follow) and not follow:
                self.summary.outcome = NO_RUN
                return self.summary
            while not self.stopping:
                self.keep_lease()
                took = self.drain_once(block=False)
                # Asked when the list ran dry or all that was submitted is drained: before
                # blocking (no wait at the end), and before a next run's results pile in.
                if (not took or self._drained >= self._submitted) and self.done():
                    if not follow:
                        break
                    self._next_run()
                elif not took:
                    self.drain_once(block=True)
        finally:
            self.pipe.release(self.id)
        return self.summary

    def _next_run(self) -> None:
        """``follow``: the run drained is marked ended (by `done`); say so, and wait for the
        next one, draining strays meanwhile."""
        log.info(
            "run %s %s: %d result(s) so far (%d ok, %d failed)",
            self.summary.run,
            self.summary.outcome,
            self.summary.total,
            self.summary.ok,
            self.summary.failed,
        )
        self.summary.run = None
        self.summary.outcome, self.summary.short = STOPPED, []
        self._submitted = self._drained = 0
        self._members.clear()
        self._find_run(follow=True)

    def _find_run(self, follow: bool) -> bool:
        """The run to drain: the current one, or (between runs) the next to start. False
        when there is none and the sink is not to wait."""
        state = self.pipe.snapshot()
        self._members.clear()  # asked again of the run found
        if state.run is not None and not state.run.over:
            self.summary.run = state.run.id
            return True
        if not (self.settings.wait_for_run or follow):
            return False
        log.info("no run in progress on pipeline %r; waiting for the next", self.pipe.name)
        while not self.stopping:
            self.keep_lease()
            self.drain_once(block=True)  # strays pushed by hand still go out meanwhile
            self.pipe.check_layout()  # the pipeline created sharded meanwhile: an error
            state = self.pipe.snapshot()
            if state.run is not None and not state.run.over:
                self._members.clear()
                self.summary.run = state.run.id
                return True
        return False

    def _resume_output(self) -> None:
        """A file output that a sink wrote to before: cut it back to where acknowledged
        results end, dropping what a sink that died wrote but did not acknowledge (it is
        still held, and is written again now): each result is in the file once, and a line
        torn by a kill mid-write is cut off with it. A file with no mark of its own (new,
        recreated, or shorter than its mark: cut by hand) starts from its size now, after a
        newline if it ended in a partial line."""
        if not isinstance(self.handler, Resumable):
            return
        recorded = self.pipe.output_mark(self.handler.name)
        if recorded is None or self.handler.size() < recorded:
            if self.handler.end_line():
                log.warning(
                    "%s ended in a partial line that this pipeline's sink did not write: a "
                    "newline was added after it, so results start on a line of their own",
                    self.handler.name,
                )
            self.pipe.record_output(self.handler.name, self.handler.size())
            return
        cut = self.handler.cut_back(recorded)
        if cut:
            log.warning(
                "%s: cut %d byte(s) a sink wrote but did not acknowledge; they follow again",
                self.handler.name,
                cut,
            )

    def _hold_lease(self) -> None:
        """One sink per pipeline: two would take the same held batch and write it twice."""
        waiting = False
        while not self.claim():
            if not waiting:
                log.warning(
                    "another sink is draining pipeline %r; waiting for its lease", self.pipe.name
                )
                waiting = True
            if self.stopping:
                return
            time.sleep(0.5)

    def claim(self) -> bool:
        """Take or renew the pipeline's sink lease; False while another sink holds it."""
        if not self.pipe.lease(self.id, self.settings.lease):
            return False
        self._renewed = time.monotonic()
        return True

    def keep_lease(self) -> None:
        """Renew the lease once a third of it has passed; raises `SinkLeaseLost` when another
        sink holds it. Public for an output that blocks longer than a lease (an HTTP receiver
        that is down): it calls this while it waits, or a standby would take the batch."""
        if time.monotonic() - self._renewed < self.settings.lease / 3:
            return
        if not self.claim():
            raise SinkLeaseLost(f"sink {self.id} lost its lease on {self.pipe.name!r}")

    def drain_once(self, block: bool = True) -> int:
        """Take one batch (blocking briefly for one when there is none), hand each task's
        answer to the handler, ack the batch; returns how many elements it took."""
        count = max(1, self.settings.batch_size // self._per_element)
        taken = self.pipe.take_results(count, self.settings.block_seconds if block else None)
        held = taken.held
        if not held:
            return 0
        handled = counted = 0
        members = self._members
        resumable = self.handler if isinstance(self.handler, Resumable) else None
        before = resumable.mark()[1] if resumable is not None else 0
        for raw in held:
            if not raw.startswith(b'{"n":'):  # a single result, the common case of chunksize 1
                task_id, good, producer = parse_result(raw)
                self.handler(ResultEnvelope(one_line(raw), producer, task_id))
                self.summary.ok += good
                self.summary.failed += not good
                counted += members[producer] if producer in members else self._counts(producer)
                handled += 1
                continue
            answered = parse_results(raw)
            if self._lines is not None:
                self._lines(answered.lines)
                handled += len(answered.lines)
            else:
                handler, producer, lines = self.handler, answered.producer, answered.lines
                for start in range(0, len(lines), 1024):
                    for line in lines[start : start + 1024]:
                        handler(ResultEnvelope(line, producer))
                    self.keep_lease()  # a slow handler must not outlive the lease
                handled += len(lines)
            self.summary.ok += answered.ok
            self.summary.failed += answered.failed
            producer = answered.producer
            if members[producer] if producer in members else self._counts(producer):
                counted += answered.ok + answered.failed
        self._per_element = max(1, handled // len(held))  # elements are chunks, or not
        if self.flush is not None:
            self.flush()  # written before acknowledged: a crash re-delivers, never drops
        mark = resumable.mark() if resumable is not None else None
        if not self.pipe.ack(taken, counted, handled, mark):
            # Another sink took them over: it writes them. Our copy would be a duplicate.
            if resumable is not None:
                resumable.cut_back(before)
            raise SinkLeaseLost(
                f"sink {self.id}: {len(held)} result element(s) were taken over by another "
                f"sink before this one acknowledged them (its lease ran out); stopping"
            )
        self._drained += counted
        return len(held)

    def _counts(self, producer: str | None) -> bool:
        """Whether results from ``producer`` count toward the end of the run: only when it
        joined the current run. A result with any other producer (a dead letter's payload
        pushed back by hand, a stray of an earlier run) is written, never counted, or the
        sink would stop while a submitted task's result is still to come. Asked of Redis once
        per producer id (a producer joins before it pushes, so its first result finds it
        there), so the path every result takes stays one dict lookup."""
        member = self._members[producer] = producer is not None and self.pipe.joined(producer)
        return member

    def done(self) -> bool:
        """The run ended: every producer left and every submitted task's result was drained.
        Then the run is marked ended (its outcome in the summary).

        Asks Redis only when it could be true: while fewer results were drained than were
        last seen submitted, it cannot be, and a sink that asked every time the results list
        ran empty would spend a noticeable share of a core asking."""
        if self._drained < self._submitted:
            return False
        self.pipe.check_layout()
        state = self.pipe.snapshot()
        waiting_on_producers = state.drained >= state.submitted and not state.closed
        if waiting_on_producers and self.pipe.expire_producers():  # one died: lease ran out
            state = self.pipe.snapshot()
        self._submitted, self._drained = state.submitted, state.drained
        if self.summary.run is None and state.run is not None and not state.run.over:
            self.summary.run = state.run.id  # drained without run(): this run is ours
        if state.run is None or state.run.id != self.summary.run:
            # our run ended (a producer that joined found it drained) and the next began
            self.summary.outcome = str((state.last_run or {}).get("state", INCOMPLETE))
            return True
        if not (state.closed and self._drained >= self._submitted and state.results == 0):
            return False
        ended = self.pipe.finish_run(state.run.id)
        if ended == RUNNING:
            return False
        self.summary.outcome = ended
        self.summary.short = [p for p in state.producers if p.state not in (OPEN, CLOSED_STATE)]
        return True
