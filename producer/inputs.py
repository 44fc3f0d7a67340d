"""JSON Lines in, task calls out: the reader behind ``redpool produce``.

Each line is checked as JSON (strict: no NaN, no lone surrogates), then sent on as the bytes it
is: an array is the positional args, an object the kwargs, anything else one argument. Nothing
is parsed into Python objects and written again.
"""

from __future__ import annotations

import os
import select
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from redpool import codec
from redpool.envelope import MAX_PAYLOAD
from redpool.producer.producer import FLUSH, Flush, JsonCall

READ = 1 << 16
"""Bytes read from a pipe at a time."""

MAX_LINE = MAX_PAYLOAD - 4096
"""Longest input line: with its envelope, a task must stay under the workers' limit."""


def read_lines(stream: BinaryIO, linger: float) -> Iterator[bytes | Flush]:
    """The lines of ``stream``; from a pipe or a terminal, also `FLUSH` whenever no new
    line came for ``linger`` seconds, so a trickling stream's tasks go out at once.

    A regular file is read as it is (nothing to wait for). A pipe is read with select()
    and os.read(), which return what is there instead of waiting for a full buffer."""
    fd = stream.fileno()
    if stat.S_ISREG(os.fstat(fd).st_mode) or not linger:
        yield from stream
        return
    rest = b""
    quiet = False  # FLUSH already said since the last line
    while True:
        ready, _, _ = select.select([fd], [], [], None if quiet else linger)
        if not ready:
            quiet = True
            yield FLUSH
            continue
        data = os.read(fd, READ)
        if not data:
            break
        *lines, rest = (rest + data).split(b"\n")
        for line in lines:
            yield line + b"\n"
        quiet = False
    if rest:
        yield rest


def read_calls(
    lines: Iterable[bytes | Flush], on_bad: Callable[[int, str], None]
) -> Iterator[JsonCall | Flush]:
    """One call per non-blank line, streamed (and `FLUSH` passed on); a bad line is reported
    by number and skipped.

    Skipping rather than stopping: the lines before and after it are good work that the
    user wants done, and the exit code still says the input was not clean.
    """
    number = 0
    for line in lines:
        if isinstance(line, Flush):
            yield FLUSH
            continue
        number += 1
        text = line.strip()
        if not text:
            continue
        if len(text) > MAX_LINE:
            on_bad(number, f"{len(text):,} bytes; a task's arguments may take {MAX_LINE:,}")
            continue
        try:
            codec.validate(text)
        except codec.JSONDecodeError as exc:
            on_bad(number, f"not JSON ({exc})")
            continue
        yield call_from_json(text)


def call_from_json(text: bytes) -> JsonCall:
    """An array is the positional args, an object the kwargs, anything else one argument."""
    if text[:1] == b"[":
        return text, None
    if text[:1] == b"{":
        return b"[]", text
    return b"[" + text + b"]", None
