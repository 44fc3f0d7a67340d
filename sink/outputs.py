"""Where ``redpool sink`` writes: one JSON line per result, as the worker wrote it."""

from __future__ import annotations

import sys
from typing import BinaryIO

from redpool.answers import ResultEnvelope
from redpool.errors import ConfigError


class JsonLines:
    """A handler that appends each result's JSON as one line; ``flush`` before each ack.

    The sink hands it a chunk's answers all at once (`write_lines`): one write of all the
    lines, and a line is never written in two pieces."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def __call__(self, result: ResultEnvelope) -> None:
        self.stream.write(result.raw + b"\n")

    def write_lines(self, lines: list[bytes]) -> None:
        self.stream.write(b"\n".join(lines) + b"\n")

    def flush(self) -> None:
        self.stream.flush()


def open_output(path: str, append: bool = True) -> BinaryIO:
    """``-`` is stdout; a file is appended to, so a restarted sink never truncates results
    (``redpool run``, a fresh run on a fresh Redis, starts the file anew)."""
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "ab" if append else "wb")
    except OSError as exc:
        raise ConfigError(f"cannot write output {path!r}: {exc.strerror}") from None
