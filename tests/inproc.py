"""Roles driven in this process, on any client (fakeredis or a real server)."""

from __future__ import annotations

import dataclasses
from typing import Any

import redis

from redpool.pipeline import Pipeline
from redpool.registry import Registry
from redpool.sink import Sink, SinkSettings
from redpool.sink.sink import Handler
from redpool.workers.child import Child
from redpool.workers.settings import WorkerSettings
from redpool.workers.slots import Slot
from tests import jobs

REGISTRY = Registry.from_module(jobs)


def child(
    client: redis.Redis,
    pipeline: str,
    index: int = 0,
    worker: str = "w1",
    batch: int = 0,
    registry: Registry = REGISTRY,
    **settings: Any,
) -> Child:
    """A worker child whose ``tick()`` a test calls itself, its host registered with a long
    lease; ``batch`` fixes how many tasks each tick takes (else it adapts, from one);
    ``settings``: other `WorkerSettings`."""
    options = WorkerSettings(**{"processes": 1, "block_seconds": 0.01, **settings})
    if batch:
        options = dataclasses.replace(options, first_batch=batch, max_batch=batch)
    pipe = Pipeline.connect(client, pipeline, writes=False)  # its shards, as Redis records them
    pipe.heartbeat(worker, 3600, {"processes": index + 1})  # as its supervisor does first
    return Child(pipe, options, registry, worker, index, Slot())


def sink(
    client: redis.Redis, pipeline: str, handler: Handler | None = None, **settings: Any
) -> Sink:
    """A sink that blocks only briefly when idle, for tests that drive it in this process."""
    options = SinkSettings(**{"block_seconds": 0.01, **settings})
    return Sink(client, pipeline, handler, settings=options)


def run_until_idle(c: Child) -> int:
    """Tick until a tick finds nothing; returns how many tasks ran."""
    total = 0
    while n := c.tick():
        total += n
    return total
