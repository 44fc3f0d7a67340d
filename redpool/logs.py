"""How the roles log: one line per event on stderr, with a timestamp and a level, or with
``--log-json`` one JSON object per line (for a log shipper). Set up once, by the CLI."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from redpool import codec

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "pid"}`` plus ``"error"`` for an exception."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return codec.dumps(body).decode()


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is logged: while a progress line is
    drawn, that is rich's proxy, which prints the log line above it."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(verbose: bool, as_json: bool) -> None:
    handler = _Stderr()
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def _iso(created: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{stamp}.{int(created % 1 * 1000):03d}Z"
