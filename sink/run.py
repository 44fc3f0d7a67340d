"""``redpool sink``: results to a JSON Lines file or stdout until the run is done."""

from __future__ import annotations

import signal

from redpool.pipeline import RedisTarget
from redpool.sink.outputs import JsonLines, JsonLinesFile, close_output, open_output
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

        def stop(_signum: int, _frame: object) -> None:  # a flag only; the batch finishes
            sink.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        return sink.run(follow=follow)
    finally:
        if path != "-":
            close_output(stream)
