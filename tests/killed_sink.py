"""A sink that SIGKILLs itself after writing and flushing its Nth batch, before acknowledging
it: the one moment a file output could get results twice. Run as
``python -m tests.killed_sink URL PIPELINE OUTPUT N``; the real Sink and JsonLinesFile, only
the flush callback is the test's."""

from __future__ import annotations

import os
import signal
import sys

from redpool.settings import RedisSettings
from redpool.sink import Sink, SinkSettings
from redpool.sink.outputs import JsonLinesFile, open_output


def main(url: str, pipeline: str, output: str, batches: int) -> None:
    out = JsonLinesFile(open_output(output), output)
    flushed = 0

    def flush_then_die() -> None:
        nonlocal flushed
        out.flush()
        flushed += 1
        if flushed == batches:
            os.kill(os.getpid(), signal.SIGKILL)

    settings = SinkSettings(batch_size=50, lease=1, block_seconds=0.3)  # restarts soon after
    Sink(RedisSettings(url), pipeline, out, flush=flush_then_die, settings=settings).run()
    raise SystemExit("the sink ended before its kill")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
