"""JSON Lines in, task calls out: the reader behind ``redpool produce``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from redpool import codec
from redpool.producer.producer import Call


def call_from_json(value: Any) -> Call:
    """An array is the positional args, an object the kwargs, anything else one argument."""
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        return [], value
    return [value], {}


def read_calls(lines: Iterable[bytes], on_bad: Callable[[int, str], None]) -> Iterator[Call]:
    """One call per non-blank line, streamed; a bad line is reported by number and skipped.

    Skipping rather than stopping: the lines before and after it are good work that the
    user wants done, and the exit code still says the input was not clean.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = codec.loads(line)
        except codec.JSONDecodeError as exc:
            on_bad(number, f"not JSON ({exc})")
            continue
        yield call_from_json(value)
