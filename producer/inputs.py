"""JSON Lines in, task calls out: the reader behind ``redpool produce``.

Each line is checked as JSON (strict: no NaN, no lone surrogates), then sent on as the bytes it
is: an array is the positional args, an object the kwargs, anything else one argument. Nothing
is parsed into Python objects and written again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from redpool import codec
from redpool.envelope import MAX_PAYLOAD
from redpool.producer.producer import JsonCall

MAX_LINE = MAX_PAYLOAD - 4096
"""Longest input line: with its envelope, a task must stay under the workers' limit."""


def read_calls(lines: Iterable[bytes], on_bad: Callable[[int, str], None]) -> Iterator[JsonCall]:
    """One call per non-blank line, streamed; a bad line is reported by number and skipped.

    Skipping rather than stopping: the lines before and after it are good work that the
    user wants done, and the exit code still says the input was not clean.
    """
    for number, line in enumerate(lines, start=1):
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
