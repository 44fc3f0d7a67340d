"""``redpool sink``: results to a JSON Lines file or stdout until the stream is done."""

from __future__ import annotations

import signal

from redpool.connection import RedisSettings
from sink.outputs import JsonLines, open_output
from sink.sink import Sink, Summary


def sink_to(settings: RedisSettings, pipeline: str, path: str, follow: bool) -> Summary:
    stream = open_output(path)
    try:
        out = JsonLines(stream)
        sink = Sink(settings.url, pipeline, out, flush=out.flush, wait=settings.wait)

        def stop(_signum: int, _frame: object) -> None:  # a flag only; the batch finishes
            sink.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        return sink.run(follow=follow)
    finally:
        if path != "-":
            stream.close()
