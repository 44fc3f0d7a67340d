"""The Lua scripts of the wire contract, loaded once per client.

Each ``*.lua`` file opens with a header naming its KEYS, ARGV, what it reads and writes and
what it returns; `redpool.pipeline.Pipeline` has the one method that calls each of them and
builds its KEYS and ARGV in the header's order. redis-py's ``Script`` runs them by SHA and
reloads them by itself when a restarted Redis has forgotten them (NOSCRIPT), which our outage
handling relies on.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis
from redis.commands.core import Script

MAX_BATCH = 5000
"""Most elements one call moves (a push script's unpack() fails somewhere under 8,000 values;
a batch of that many elements is more than any batch needs)."""

_NAMES = (
    "push",
    "take",
    "promote",
    "heartbeat",
    "forget",
    "lease",
    "snapshot",
    "holder",
    "run",
    "leave",
    "renew",
    "caller",
    "drain",
    "ack",
    "mark",
    "fence",
)
ALLOW_OOM = "#!lua flags=allow-oom\n"
"""Makes a script runnable when Redis is at its maxmemory (Redis 7's script flags)."""


def source(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Scripts:
    """One registered ``Script`` per Lua file, bound to a client."""

    push: Script
    take: Script
    promote: Script
    heartbeat: Script
    forget: Script
    lease: Script
    snapshot: Script
    holder: Script
    run: Script
    leave: Script
    renew: Script
    caller: Script
    drain: Script
    """The sink's take when Redis is out of memory (allow-oom, Redis 7)."""
    ack: Script
    """The sink's settle when Redis is out of memory (allow-oom, Redis 7)."""
    mark: Script
    """The sink's output mark when Redis is out of memory (allow-oom, Redis 7)."""
    lease_oom: Script
    """lease.lua, allowed to run when Redis is out of memory: the sink, which frees memory,
    must be able to start then. Only used once Redis said OOM: older Redis and fakeredis do
    not know script flags."""
    fence: Script

    @classmethod
    def register(cls, client: redis.Redis) -> Scripts:
        scripts = {name: client.register_script(source(name)) for name in _NAMES}
        lease_oom = client.register_script(ALLOW_OOM + source("lease"))
        return cls(**scripts, lease_oom=lease_oom)
