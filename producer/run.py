"""``redpool produce``: a JSON Lines file or stdin into a pipeline, streamed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from redpool.errors import ConfigError
from redpool.pipeline import RedisTarget
from redpool.producer.inputs import read_calls, read_lines
from redpool.producer.producer import Producer, ProducerSettings

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
    redis: RedisTarget, pipeline: str, task: str, path: str, settings: ProducerSettings
) -> tuple[int, int]:
    """Submit every good line, report each bad one by number; (submitted, bad lines).

    Anything that stops it early (an error, Ctrl-C, SIGTERM) aborts the producer's part of
    the stream rather than closing it: what it submitted still runs, and the sink says the
    run is incomplete."""
    bad = 0

    def on_bad(number: int, reason: str) -> None:
        nonlocal bad
        bad += 1
        log.error("%s:%d: %s; line skipped", path if path != "-" else "<stdin>", number, reason)

    with open_input(path) as stream, Producer(redis, pipeline, settings) as producer:
        lines = read_lines(stream, settings.linger)
        count = producer.submit_json(task, read_calls(lines, on_bad))
    return count, bad
