"""redpool: a pool of worker processes per host, fed through Redis lists.

``from redpool import task, Producer, Sink`` is the public API. Producer and Sink live in
their role packages and are imported on first use, so that a worker importing ``redpool``
for ``@task`` does not load the producer and the sink, and no import cycle can form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redpool.errors import (
    ConfigError,
    PayloadError,
    RedisUnavailable,
    RedpoolError,
    StreamClosed,
    TaskTimeout,
)
from redpool.registry import Task, task

if TYPE_CHECKING:
    from producer import Producer
    from sink import Sink

__all__ = [
    "ConfigError",
    "PayloadError",
    "Producer",
    "RedisUnavailable",
    "RedpoolError",
    "Sink",
    "StreamClosed",
    "Task",
    "TaskTimeout",
    "task",
]


def __getattr__(name: str) -> Any:
    if name == "Producer":
        from producer import Producer

        return Producer
    if name == "Sink":
        from sink import Sink

        return Sink
    raise AttributeError(f"module 'redpool' has no attribute {name!r}")
