"""``redpool sink``: results to a JSON Lines file or stdout until the stream is done."""

from __future__ import annotations

import signal

from redpool.pipeline import RedisTarget
from redpool.sink.outputs import JsonLines, open_output
from redpool.sink.sink import Sink, SinkSettings, Summary


def sink_to(
    redis: RedisTarget, pipeline: str, path: str, follow: bool, settings: SinkSettings
) -> Summary:
    stream = open_output(path)
    try:
        out = JsonLines(stream)
        sink = Sink(redis, pipeline, out, flush=out.flush, settings=settings)

        def stop(_signum: int, _frame: object) -> None:  # a flag only; the batch finishes
            sink.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        return sink.run(follow=follow)
    finally:
        if path != "-":
            stream.close()
