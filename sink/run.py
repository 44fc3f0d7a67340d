"""``redpool sink``: results to a JSON Lines file, stdout or an HTTP receiver until the run
is done."""

from __future__ import annotations

import signal

from redpool.pipeline import RedisTarget
from redpool.sink.outputs import JsonLines, JsonLinesFile, close_output, open_output
from redpool.sink.post import PostSettings
from redpool.sink.sender import Poster, Unsent
from redpool.sink.sink import Sink, SinkSettings, Summary


def sink_to(
    redis: RedisTarget,
    pipeline: str,
    path: str,
    follow: bool,
    settings: SinkSettings,
    fsync: bool = False,
) -> Summary:
    """A file is written exactly once (`JsonLinesFile`); stdout at least once."""
    stream = open_output(path)
    try:
        out = JsonLines(stream) if path == "-" else JsonLinesFile(stream, path, fsync)
        sink = Sink(redis, pipeline, out, flush=out.flush, settings=settings)
        _stop_on_signals(sink)
        return sink.run(follow=follow)
    finally:
        if path != "-":
            close_output(stream)


def post_to(
    redis: RedisTarget, pipeline: str, post: PostSettings, follow: bool, settings: SinkSettings
) -> Summary:
    """Each result POSTed, at least once: a batch is acknowledged after all of it got a 2xx.
    Stopped (a signal) while some were unsent, the sink leaves the batch unacknowledged and
    ends as a stopped sink does."""
    poster = Poster(post)
    try:
        sink = Sink(redis, pipeline, poster, flush=poster.flush, settings=settings)
        poster.keep_lease = sink.keep_lease
        _stop_on_signals(sink, poster)
        try:
            return sink.run(follow=follow)
        except Unsent:
            return sink.summary
    finally:
        poster.close()  # the POSTs in flight finish; none starts


def _stop_on_signals(sink: Sink, poster: Poster | None = None) -> None:
    def stop(_signum: int, _frame: object) -> None:  # a flag only; the batch finishes
        sink.stopping = True
        if poster is not None:
            poster.stopping = True  # no new try; the batch is acked only if all were sent

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
