"""redpool: a pool of worker processes per host, fed through Redis lists.

``from redpool import task, Producer, Sink`` is the public API: this module is the face of the
package. The roles' classes live in their role packages and are imported on first use, so
that a tasks module importing ``redpool`` for ``@task`` loads none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from redpool.errors import (
    ConfigError,
    PayloadError,
    RedisRefused,
    RedisUnavailable,
    RedpoolError,
    SettingError,
    StreamClosed,
    TaskTimeout,
)
from redpool.registry import Task, task
from redpool.settings import RedisSettings

if TYPE_CHECKING:
    from redpool.pool import Executor, Pool, TaskFailed
    from redpool.producer import Producer, ProducerSettings
    from redpool.sink import Sink, SinkSettings
    from redpool.workers.settings import WorkerSettings

__all__ = [
    "ConfigError",
    "Executor",
    "Pool",
    "TaskFailed",
    "PayloadError",
    "Producer",
    "ProducerSettings",
    "RedisRefused",
    "RedisSettings",
    "RedisUnavailable",
    "RedpoolError",
    "SettingError",
    "Sink",
    "SinkSettings",
    "StreamClosed",
    "Task",
    "TaskTimeout",
    "WorkerSettings",
    "task",
]

_LAZY = {
    "Pool": "redpool.pool",
    "Executor": "redpool.pool",
    "TaskFailed": "redpool.pool",
    "Producer": "redpool.producer",
    "ProducerSettings": "redpool.producer",
    "Sink": "redpool.sink",
    "SinkSettings": "redpool.sink",
    "WorkerSettings": "redpool.workers.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'redpool' has no attribute {name!r}")
