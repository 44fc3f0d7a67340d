"""What a person at a terminal sees while a run goes: a live progress line for ``run``,
``produce`` and ``sink``, and ``status --watch``.

Both read the pipeline's counters (one snapshot a refresh, from a connection of their own,
that reads no list: a list of big chunks would cost Redis time per look), never the roles'
internals: the line shows the run as Redis sees it, whichever hosts do the
work. rich draws them, on stderr, in place; nothing is drawn when stderr is not a terminal
(a log file, CI) or with ``--quiet``, so output meant for programs stays clean.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redpool.pipeline import Pipeline, RedisTarget
from redpool.state import Snapshot

if TYPE_CHECKING:  # rich is imported only when something is drawn: a command starts faster
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

REFRESH = 0.5
"""Seconds between two looks at the counters."""


def on_terminal(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@dataclass
class Rate:
    """Tasks per second of a growing count, smoothed over the last few looks."""

    smoothing: float = 0.3
    per_second: float | None = None
    _last: tuple[float, int] | None = field(default=None, repr=False)

    def see(self, count: int, at: float) -> float | None:
        if self._last is not None and at > self._last[0]:
            now = (count - self._last[1]) / (at - self._last[0])
            prior = self.per_second
            self.per_second = now if prior is None else prior + self.smoothing * (now - prior)
        if self._last is None or at > self._last[0]:
            self._last = (at, count)
        return self.per_second


def progress_line(state: Snapshot, counted: str, rate: float | None) -> str:
    """``counted`` is what moves the line: ``submitted`` (a producer), ``done`` (answers
    written by the workers) or ``drained`` (answers the sink wrote out)."""
    run = f"run {state.run.id}" if state.run else "no run yet"
    submitted = state.submitted
    if counted == "submitted":
        line = f"{run}: {submitted:,} submitted"
        left = None
    else:
        count = state.drained if counted == "drained" else _done(state)
        share = f" ({count / submitted:.0%})" if submitted else ""
        line = f"{run}: {count:,} / {submitted:,} {counted}{share}"
        left = max(0, submitted - count) if state.closed else None
    if rate is not None:
        line += f", {rate:,.0f}/s"
        if left is not None and rate > 0:
            line += f", ETA {_duration(left / rate)}"
    failed = state.stats.get("failed", 0)
    if failed:
        line += f", {failed:,} failed"
    if not state.closed:
        line += "; stream open"
    return line


def _done(state: Snapshot) -> int:
    return state.stats.get("ok", 0) + state.stats.get("failed", 0)


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@contextmanager
def progress(redis: RedisTarget, pipeline: str, counted: str, quiet: bool) -> Iterator[None]:
    """A live line on stderr while the body runs (nothing when not on a terminal)."""
    if not on_terminal(quiet):
        yield
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    pipe = Pipeline.connect(redis, pipeline).impatient()  # an outage is the role's to report
    stop = threading.Event()
    rate = Rate()

    def draw() -> Text:
        state = pipe.snapshot()  # counters only: the lists are never read
        count = {"submitted": state.submitted, "drained": state.drained}.get(counted)
        seen = rate.see(_done(state) if count is None else count, time.monotonic())
        return Text(progress_line(state, counted, seen))

    # Log lines (see `redpool.logs`) go through sys.stderr, which Live redirects above the line.
    console = Console(stderr=True)
    with Live(console=console, auto_refresh=False, redirect_stdout=False) as live:
        thread = threading.Thread(
            target=_refresh, args=(live, draw, stop), name="redpool-progress", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            _update(live, draw)  # the last state, left on the screen


def _refresh(live: Live, draw: Callable[[], Text], stop: threading.Event) -> None:
    while not stop.wait(REFRESH):
        _update(live, draw)


def _update(live: Live, draw: Callable[[], Text]) -> None:
    try:
        live.update(draw(), refresh=True)
    except Exception:  # noqa: BLE001 - a progress line never stops a run
        return


def watch(render: Callable[[], str], interval: float, console: Console | None = None) -> None:
    """``status --watch``: ``render`` redrawn in place every ``interval`` seconds, until
    Ctrl-C."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    with Live(console=console or Console(), auto_refresh=False, screen=False) as live:
        try:
            while True:
                live.update(Text(render()), refresh=True)
                time.sleep(interval)
        except KeyboardInterrupt:  # the way out, not an error
            return
