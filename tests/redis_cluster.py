"""Private Redis Cluster and Sentinel deployments for tests, built from RedisServer.

Each node is a redis-server of its own on free ports in a temp dir, never the machine's Redis.
Both deployments wait on what the servers say (CLUSTER INFO/NODES, SENTINEL MASTER, ROLE)
with deadlines, and ``stop()`` SIGKILLs every process they started, whatever state it is in;
use them through ``running_cluster``/``running_sentinel`` so that happens even on failure.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.cluster
from redis.crc import key_slot

from redpool.embedded import free_port
from tests.procs import wait_for
from tests.redis_server import RedisServer, unavailable

SLOTS = 16384
# Short, so a killed master is failed over in a few seconds; not so short that a busy CI
# machine (every node fsyncs each write) misses pings and fails over a healthy one.
NODE_TIMEOUT_MS = 1000
# A sentinel calls a primary down after this long; failover-timeout also bounds how long a
# sentinel that lost an election waits (twice this) before it tries again.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
# A master waits 5 s by default for more replicas before a diskless full sync; a replica
# that has not synced cannot fail over, so every test would pay those 5 s.
NO_SYNC_DELAY = ["--repl-diskless-sync-delay", "0"]
# Deadlines (seconds) for the waits; what they wait for normally takes 2-4 s.
READY_DEADLINE = 30.0
FAILOVER_DEADLINE = 30.0


def require_redis_cli() -> str:
    """The redis-cli binary, which forms the cluster."""
    exe = shutil.which("redis-cli")
    if exe is None:
        unavailable("redis-cli is not on PATH")
    return exe


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: two separate free_port() calls may hand out the same one."""
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def _client(server: RedisServer) -> redis.Redis:
    """Short timeouts: a killed or hung node must not hold a wait past its deadline."""
    return redis.Redis(
        port=server.port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True
    )


def _command(client: redis.Redis, *args: str) -> Any:
    """A command as the server answers it: one word per argument, so no redis-py response
    callback (keyed by "CLUSTER NODES", not "CLUSTER") reshapes the reply."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _role(client: redis.Redis) -> str:
    """What the server says it is now: "master", "slave" or "sentinel"."""
    return str(_command(client, "ROLE")[0])


def _link(client: redis.Redis) -> str:
    """A replica's master_link_status: "up" once it has synced and is streaming."""
    return str(client.info("replication").get("master_link_status"))


def _info(text: str) -> dict[str, str]:
    """A ``key:value`` per line, as CLUSTER INFO and INFO write them."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: v for k, v in pairs}


def _fields(reply: Any) -> dict[str, str]:
    """SENTINEL MASTER's fields: a map under RESP3 (redis-py 8's default), a flat list of
    names and values under RESP2."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    return {str(k): str(v) for k, v in zip(reply[::2], reply[1::2], strict=True)}


@dataclass(frozen=True)
class NodeView:
    """One line of CLUSTER NODES: how the asking node sees that node. Parsed here rather than
    by redis-py, whose parsed form has changed between versions."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, line: str) -> NodeView:
        fields = line.split()
        address = fields[1].split("@")[0]
        ranges = []
        for s in fields[8:]:
            if s.startswith("["):  # a slot being migrated or imported
                continue
            first, _, last = s.partition("-")
            ranges.append((int(first), int(last or first)))
        return cls(
            id=fields[0],
            port=int(address.rsplit(":", 1)[1]),
            flags=frozenset(fields[2].split(",")),
            master_id=None if fields[3] == "-" else fields[3],
            slots=tuple(ranges),
        )

    @property
    def healthy(self) -> bool:
        return not self.flags & {"fail", "fail?", "handshake", "noaddr"}

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)


class _Deployment:
    """What a cluster and a sentinel deployment share: waits that, when they time out, say
    where the logs are and what every node said."""

    dir: Path
    servers: list[RedisServer]
    _clients: dict[int, redis.Redis]

    def describe(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        """SIGKILL every server of it: nothing outlives the test."""
        for server in self.servers:
            server.kill()
        for client in self._clients.values():
            client.close()

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            wait_for(predicate, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e} (logs in {self.dir})\n{self.describe()}") from None


class RedisCluster(_Deployment):
    """``masters`` masters with ``replicas`` replicas each, every node with the AOF on (so a
    SIGKILL loses nothing it acknowledged) and a short node timeout (so failover is quick)."""

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 0) -> None:
        self.cli = require_redis_cli()
        self.dir = directory
        self.replicas = replicas
        n = masters * (1 + replicas)
        # The cluster bus defaults to port + 10000, which may be taken or past 65535: give
        # it a free port of its own.
        ports = free_ports(2 * n)
        self.servers = [
            RedisServer(
                directory / f"node{i}",
                appendonly=True,
                port=ports[2 * i],
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    "--cluster-port",
                    str(ports[2 * i + 1]),
                    *NO_SYNC_DELAY,
                ],
            )
            for i in range(n)
        ]
        self._clients = {s.port: _client(s) for s in self.servers}

    def start(self) -> RedisCluster:
        """Start every node, form the cluster with redis-cli, and wait until it serves."""
        try:
            for server in self.servers:
                server.start()
            created = subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{s.port}" for s in self.servers),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                timeout=READY_DEADLINE,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout!r}")
            self._wait(self.converged, READY_DEADLINE, "the new cluster to be ok on every node")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def urls(self) -> list[str]:
        """Every live node; a cluster client needs only one to find the rest."""
        return [f"redis://127.0.0.1:{s.port}" for s in self.nodes()]

    @property
    def url(self) -> str:
        return self.urls[0]

    def nodes(self) -> list[RedisServer]:
        """The nodes still running (a killed master is no longer one)."""
        return [s for s in self.servers if s.proc is not None]

    def client(self) -> redis.cluster.RedisCluster:
        """A cluster client; close it (it is a context manager)."""
        return redis.cluster.RedisCluster.from_url(self.url, socket_timeout=5)

    def view(self, server: RedisServer) -> list[NodeView]:
        """CLUSTER NODES as ``server`` sees the cluster."""
        text = _command(self._clients[server.port], "CLUSTER", "NODES")
        return [NodeView.parse(line) for line in str(text).splitlines() if line.strip()]

    def masters(self) -> list[RedisServer]:
        return [s for s in self.nodes() if _role(self._clients[s.port]) == "master"]

    def master_for_key(self, key: str | bytes) -> RedisServer:
        """The master serving ``key``'s slot, as a live node sees it now."""
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        by_port = {s.port: s for s in self.nodes()}
        for node in self.view(self.nodes()[0]):
            if "master" in node.flags and node.serves(slot) and node.port in by_port:
                return by_port[node.port]
        raise LookupError(f"no live master serves slot {slot} of {key!r}")

    def kill_master(self, master: RedisServer | None = None) -> RedisServer:
        """SIGKILL ``master`` (by default the first live one) and wait until one of its
        replicas has taken over its slots and every live node says the cluster is ok again.
        Returns the promoted replica."""
        if master is None:
            master = self.masters()[0]
        views = self.view(master)
        me = next(v for v in views if "myself" in v.flags)
        replica_ports = {v.port for v in views if v.master_id == me.id and v.healthy}
        if not replica_ports:
            raise ValueError(f"master on port {master.port} has no replica to fail over to")
        master.kill()

        def promoted() -> bool:
            return self.converged() and any(s.port in replica_ports for s in self.masters())

        self._wait(promoted, FAILOVER_DEADLINE, f"a replica of port {master.port} to take over")
        return next(s for s in self.masters() if s.port in replica_ports)

    def converged(self) -> bool:
        """Every live node says cluster_state:ok with all slots served, sees every other live
        node healthy in the role that node gives itself, sees the dead ones failed with no
        slots, and every live replica's link to its master is up (a replica that never
        synced refuses to fail over: its data would be too old)."""
        try:
            return self._converged()
        except redis.RedisError:  # a node still starting, or one just killed
            return False

    def _converged(self) -> bool:
        live = self.nodes()
        roles = {s.port: _role(self._clients[s.port]) for s in live}
        for server in live:
            client = self._clients[server.port]
            info = _info(str(_command(client, "CLUSTER", "INFO")))
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                return False
            seen = {v.port: v for v in self.view(server)}
            for other in self.servers:
                v = seen.get(other.port)
                if other in live:
                    if v is None or not v.healthy or roles[other.port] not in v.flags:
                        return False
                elif v is not None and (v.slots or "fail" not in v.flags):
                    return False
            if roles[server.port] == "slave" and _link(client) != "up":
                return False
        return True

    def describe(self) -> str:
        """What every live node says, for a failure message."""
        out = []
        for s in self.nodes():
            try:
                out.append(f"node {s.port}:\n{_command(self._clients[s.port], 'CLUSTER', 'NODES')}")
            except redis.RedisError as e:
                out.append(f"node {s.port}: {e!r}")
        return "\n".join(out)


class RedisSentinel(_Deployment):
    """A primary, one replica of it, and ``sentinels`` sentinels (quorum 2) monitoring it
    under ``master_name``, with short timeouts so a failover takes seconds."""

    def __init__(self, directory: Path, master_name: str = "redpool", sentinels: int = 3) -> None:
        self.dir = directory
        self.master_name = master_name
        ports = free_ports(2 + sentinels)
        self.primary = RedisServer(
            directory / "primary", appendonly=True, port=ports[0], extra=NO_SYNC_DELAY
        )
        self.replica: RedisServer | None = RedisServer(
            directory / "replica",
            appendonly=True,
            port=ports[1],
            extra=["--replicaof", "127.0.0.1", str(ports[0]), *NO_SYNC_DELAY],
        )
        self.sentinels = [
            RedisServer(
                directory / f"sentinel{i}",
                port=port,
                config=directory / f"sentinel{i}" / "sentinel.conf",
                extra=["--sentinel"],
            )
            for i, port in enumerate(ports[2:])
        ]
        self.servers = [self.primary, self.replica, *self.sentinels]
        self._clients = {s.port: _client(s) for s in self.servers}

    def start(self) -> RedisSentinel:
        """The replica is in sync before the sentinels start, so their first look at the
        primary finds it; then wait until they agree on the primary and know each other (a
        sentinel that knows no peers can never win the vote a failover needs)."""
        try:
            self.primary.start()
            assert self.replica is not None
            self.replica.start()
            replica = self._clients[self.replica.port]
            self._wait(lambda: _link(replica) == "up", READY_DEADLINE, "the replica to sync")
            for sentinel in self.sentinels:
                assert sentinel.config is not None
                sentinel.config.parent.mkdir(parents=True, exist_ok=True)
                sentinel.config.write_text(self._sentinel_conf())
                sentinel.start()
            self._wait(self._agreed, READY_DEADLINE, "the sentinels to agree on the primary")
        except BaseException:
            self.stop()
            raise
        return self

    def _sentinel_conf(self) -> str:
        name = self.master_name
        return (
            f"sentinel monitor {name} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """What ``redis.sentinel.Sentinel`` takes."""
        return [("127.0.0.1", s.port) for s in self.sentinels]

    @property
    def sentinel_urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{s.port}" for s in self.sentinels]

    def kill_primary(self) -> RedisServer:
        """SIGKILL the primary and wait until every sentinel names the replica as the new
        primary and the replica says it is one. Returns the new primary."""
        new = self.replica
        if new is None:
            raise ValueError("the primary has no replica left to fail over to")
        self.primary.kill()
        self.primary, self.replica = new, None
        self._wait(self._agreed, FAILOVER_DEADLINE, f"failover to port {new.port}")
        return new

    def _agreed(self) -> bool:
        try:
            if _role(self._clients[self.primary.port]) != "master":
                return False
            return all(self._sentinel_agrees(s) for s in self.sentinels)
        except redis.RedisError:
            return False

    def _sentinel_agrees(self, sentinel: RedisServer) -> bool:
        """The sentinel names the current primary, with no failover under way, knows the
        other sentinels, and (before a failover) the replica."""
        reply = _command(self._clients[sentinel.port], "SENTINEL", "MASTER", self.master_name)
        state = _fields(reply)
        return (
            state["port"] == str(self.primary.port)
            and state["flags"] == "master"
            and state["num-other-sentinels"] == str(len(self.sentinels) - 1)
            and (self.replica is None or state["num-slaves"] == "1")
        )

    def describe(self) -> str:
        """What every sentinel says about the primary, for a failure message."""
        out = []
        for s in self.sentinels:
            try:
                reply = _command(self._clients[s.port], "SENTINEL", "MASTER", self.master_name)
                out.append(f"sentinel {s.port}: {reply}")
            except redis.RedisError as e:
                out.append(f"sentinel {s.port}: {e!r}")
        return "\n".join(out)


@contextmanager
def running_cluster(directory: Path, masters: int = 3, replicas: int = 0) -> Iterator[RedisCluster]:
    """A started cluster, killed whole when the block exits, however it exits."""
    cluster = RedisCluster(directory, masters, replicas)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@contextmanager
def running_sentinel(directory: Path, master_name: str = "redpool") -> Iterator[RedisSentinel]:
    """A started primary/replica/3-sentinel deployment, killed whole when the block exits."""
    deployment = RedisSentinel(directory, master_name)
    try:
        yield deployment.start()
    finally:
        deployment.stop()
