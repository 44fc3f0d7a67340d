"""Which pipelines one Redis holds: what ``redpool status`` lists, and the check that the
pipeline it is asked about is there.

A pipeline exists while any key of it does. They are found with SCAN over every pipeline's
keys (never KEYS, which would stop Redis for the whole keyspace at once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redpool.cluster import Topology
from redpool.connection import Outage, address
from redpool.errors import ConfigError
from redpool.keys import EVERY_PIPELINE, pipeline_of
from redpool.pipeline import Pipeline, RedisTarget, topology_for
from redpool.state import Snapshot


@dataclass(frozen=True)
class Survey:
    """Every pipeline of one Redis, each with its snapshot (counts in tasks)."""

    where: str
    """The Redis, as a URL without its password."""
    pipelines: dict[str, Snapshot]
    """By name, in name order."""
    cluster: bool = False
    """The Redis is a Redis Cluster: every master was looked at."""


class Catalog:
    """The pipelines of one Redis, or of every master of a Redis Cluster."""

    def __init__(self, where: Topology, *, log: logging.Logger | None = None) -> None:
        self.topology = where
        self.where = address(where.base)
        self.log = log or logging.getLogger("redpool")
        reroute = where.refresh if where.cluster else None  # a failover: the masters now
        self._outage = Outage(self.log, where=self.where, reroute=reroute)

    @classmethod
    def connect(cls, target: RedisTarget, *, log: logging.Logger | None = None) -> Catalog:
        """Connect (waiting up to the settings' ``wait`` for Redis), or use a given client."""
        return cls(topology_for(target), log=log)

    def names(self) -> list[str]:
        """The names of the pipelines that have a key here, sorted."""

        def scan() -> set[str]:
            names: set[str] = set()
            for master in self.topology.masters():
                keys = master.scan_iter(match=EVERY_PIPELINE, count=1000)
                names.update(name for name in map(pipeline_of, keys) if name is not None)
            return names

        return sorted(self._outage.call(scan))

    def find(self, name: str) -> Pipeline:
        """Pipeline ``name``, or a ConfigError naming the pipelines there are."""
        pipe = Pipeline.open(self.topology, name, log=self.log)
        if pipe.exists():
            return pipe
        names = self.names()
        there = f"pipelines there: {', '.join(names)}" if names else "no pipelines there"
        raise ConfigError(f"no pipeline {name!r} in Redis at {self.where} ({there})")

    def survey(self) -> Survey:
        """Every pipeline here and its snapshot."""
        pipelines = {
            name: Pipeline.open(self.topology, name, log=self.log).snapshot(
                count_tasks=True, every_holder=True
            )
            for name in self.names()
        }
        return Survey(self.where, pipelines, self.topology.cluster)
