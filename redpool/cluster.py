"""Where a hash tag's keys live: one Redis, or the node of a Redis Cluster serving its slot.

Every key of a pipeline (of one shard of it) shares one hash tag, so on a Redis Cluster all of
them live in one slot on one node, and every script, transaction and WATCH of ours touches
that slot alone. redis-py's ``RedisCluster`` finds the nodes and which one serves a slot; a
shard then talks to that node through a plain ``redis.Redis`` (`Topology.client`), which
keeps MULTI/EXEC under WATCH, pipelined EVALSHA and SCAN exactly as on one Redis (the cluster
client's own pipelines queue commands per slot and have no WATCH to lean on). When the slot
moves (a failover promotes a replica, a resharding moves it: MOVED, ASK, TRYAGAIN,
CLUSTERDOWN, or a node that is gone), `Topology.reroute` asks the cluster where the slot is
now and repoints that client, and the call is tried again like any outage: every call of
ours is fenced or idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
import redis.cluster
from redis.crc import key_slot

log = logging.getLogger("redpool")

SLOTS = 16384

ELSEWHERE = (
    redis.exceptions.AskError,  # MOVED is one too
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)
"""Replies of a cluster node that a slot is served elsewhere, is moving, or has no master
right now: a slot to find again (`Topology.reroute`), then the call again."""


def slot_of(tag: str) -> int:
    """The slot every key with hash tag ``tag`` is in."""
    return int(key_slot(f"{{{tag}}}".encode()))


def is_cluster_node(client: redis.Redis) -> bool:
    """The server behind ``client`` is a Redis Cluster node (False when it will not say: INFO
    denied by an ACL, or renamed away)."""
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except redis.ResponseError:
        return False


class Topology:
    """One Redis: every tag's keys are on it."""

    cluster = False

    def __init__(self, client: redis.Redis) -> None:
        self.base = client

    def client(self, tag: str) -> redis.Redis:
        """A client for the keys of hash tag ``tag``."""
        return self.base

    def reroute(self, client: redis.Redis, tag: str) -> None:
        """Point ``client`` (one `client` gave for ``tag``) at the node serving the tag now."""

    def masters(self) -> list[redis.Redis]:
        """A client for each node that holds keys: what a SCAN over every pipeline walks."""
        return [self.base]

    def refresh(self) -> None:
        """Read which node serves which slot again (a failover moved some): see `masters`."""

    def owner(self) -> Callable[[int], str] | None:
        """Slot -> the name of the node serving it, or None on one Redis (every slot is
        here): how shards are spread over a cluster's masters."""
        return None

    def close(self) -> None:
        self.base.close()


class ClusterTopology(Topology):
    """A Redis Cluster, known from one of its nodes."""

    cluster = True

    def __init__(self, client: redis.Redis, nodes: redis.cluster.RedisCluster) -> None:
        super().__init__(client)
        self.nodes = nodes

    def client(self, tag: str) -> redis.Redis:
        try:
            node = self.nodes.nodes_manager.get_node_from_slot(slot_of(tag))
        except redis.exceptions.RedisClusterException:
            # no node serves the slot now: any node, whose answer (CLUSTERDOWN, MOVED) makes
            # the first call an outage that `reroute` ends
            return redis.Redis(connection_pool=self.base.connection_pool)
        return redis.Redis(connection_pool=self._pool(node))

    def reroute(self, client: redis.Redis, tag: str) -> None:
        """Ask the cluster for its slots again (from any node that answers), then repoint
        ``client``'s connection pool. Raises a redis-py error while no node answers: the
        caller's outage goes on."""
        self.nodes.nodes_manager.initialize()
        node = self.nodes.nodes_manager.get_node_from_slot(slot_of(tag))
        pool = self._pool(node)
        if client.connection_pool is not pool:
            log.info("slot %d of {%s} is served by %s now", slot_of(tag), tag, node.name)
            client.connection_pool = pool

    def _pool(self, node: redis.cluster.ClusterNode) -> Any:
        return _node_pool(self.nodes, node)

    def masters(self) -> list[redis.Redis]:
        primaries = self.nodes.get_primaries()  # type: ignore[no-untyped-call]
        return [redis.Redis(connection_pool=self._pool(n)) for n in primaries]

    def refresh(self) -> None:
        self.nodes.nodes_manager.initialize()

    def owner(self) -> Callable[[int], str]:
        manager = self.nodes.nodes_manager
        return lambda slot: str(manager.get_node_from_slot(slot).name)

    def close(self) -> None:
        self.nodes.close()
        super().close()


class _Nodes(redis.cluster.RedisCluster):
    """redis-py's ``RedisCluster``, whose commands without a key (``COMMAND``, which its
    constructor sends) go to the node the user named (which answered a PING), not to
    a random master: a master down (a failover under way) must not stop a role from starting
    through a node that answers."""

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        self._named = (host, port)
        super().__init__(host=host, port=port, **kwargs)

    def command(self, **kwargs: Any) -> Any:
        named = self.get_node(*self._named)  # type: ignore[no-untyped-call]
        if named is None:
            return super().command(**kwargs)
        return self.get_redis_connection(named).command(**kwargs)


def topology(client: redis.Redis | redis.cluster.RedisCluster) -> Topology:
    """What ``client`` reaches: a Redis Cluster (given as redis-py's ``RedisCluster``, or as
    a client of any of its nodes, whose cluster is found from it) or one Redis."""
    if isinstance(client, redis.cluster.RedisCluster):
        primary = client.get_primaries()[0]  # type: ignore[no-untyped-call]
        return ClusterTopology(redis.Redis(connection_pool=_node_pool(client, primary)), client)
    if not is_cluster_node(client):
        return Topology(client)
    kwargs = client.connection_pool.connection_kwargs
    try:
        nodes = _Nodes(
            host=kwargs.get("host", "localhost"),
            port=int(kwargs.get("port", 6379)),
            **{k: v for k, v in kwargs.items() if k in _PASSED},
            ssl=issubclass(client.connection_pool.connection_class, redis.SSLConnection),
            retry=client.get_retry(),
            # a master down with no replica is an outage of its slots: their calls wait
            # until a node serves them again (and the roles that make them, with them)
            require_full_coverage=False,
        )
    except redis.exceptions.RedisClusterException as exc:
        raise redis.ConnectionError(f"cannot read the cluster's slots: {exc}") from None
    return ClusterTopology(client, nodes)


def _node_pool(nodes: redis.cluster.RedisCluster, node: redis.cluster.ClusterNode) -> Any:
    return nodes.get_redis_connection(node).connection_pool


_PASSED = {
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "client_name",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_check_hostname",
}
"""Connection settings of the node a user named that every node of its cluster gets too."""


def spread(name: str, count: int, owner: Callable[[int], str] | None) -> list[int]:
    """The numbers of ``count`` shards of pipeline ``name``, picked so their slots spread:
    over the cluster's masters in turn (``owner``), or over ``count`` equal ranges of the
    slots on one Redis (where a cluster made later by ``redis-cli --cluster create`` puts
    its masters). Each shard takes the smallest number not taken whose slot is where it
    should be."""
    taken: set[int] = set()
    masters: list[str] = []
    if owner is not None:
        first: dict[str, int] = {}
        for slot in range(0, SLOTS, 64):
            first.setdefault(owner(slot), slot)
        masters = sorted(first, key=first.__getitem__)

    def wanted(i: int, slot: int) -> bool:
        if owner is None:
            return slot * count // SLOTS == i
        return owner(slot) == masters[i % len(masters)]

    shards = []
    for i in range(count):
        number = 0
        while number in taken or not wanted(i, slot_of(f"{name}:{number}")):
            number += 1
        taken.add(number)
        shards.append(number)
    return shards
