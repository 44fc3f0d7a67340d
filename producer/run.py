"""``redpool produce``: a JSON Lines file or stdin into a pipeline, streamed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from producer.inputs import read_calls
from producer.producer import Producer
from redpool.connection import RedisSettings
from redpool.errors import ConfigError

log = logging.getLogger("redpool.producer")


@contextmanager
def open_input(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot read input {path!r}: {exc.strerror}") from None
    with stream:
        yield stream


def produce_file(
    settings: RedisSettings, pipeline: str, task: str, path: str, max_backlog: int | None
) -> tuple[int, int]:
    """Submit every good line, report each bad one by number; (submitted, bad lines)."""
    bad = 0

    def on_bad(number: int, reason: str) -> None:
        nonlocal bad
        bad += 1
        log.error("%s:%d: %s; line skipped", path if path != "-" else "<stdin>", number, reason)

    with open_input(path) as stream:
        producer = Producer(settings.url, pipeline, max_backlog=max_backlog, wait=settings.wait)
        with producer:
            count = producer.submit_many(task, read_calls(stream, on_bad))
    return count, bad
