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
    "fence",
)


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
    fence: Script

    @classmethod
    def register(cls, client: redis.Redis) -> Scripts:
        return cls(**{name: client.register_script(source(name)) for name in _NAMES})
