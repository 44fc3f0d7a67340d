"""The Lua scripts of the wire contract, loaded once per client.

Each ``*.lua`` file opens with a header naming its KEYS, ARGV, what it reads and writes and
what it returns. redis-py's ``Script`` runs them by SHA and reloads them by itself when a
restarted Redis has forgotten them (NOSCRIPT), which our outage handling relies on.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis
from redis.commands.core import Script

MAX_BATCH = 5000
"""Most items one script call moves: Lua's unpack() fails somewhere under 8,000 values."""

_NAMES = ("take", "commit", "ack", "push", "promote", "heartbeat", "forget", "lease")


def _source(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Scripts:
    """One registered ``Script`` per Lua file, bound to a client."""

    take: Script
    commit: Script
    ack: Script
    push: Script
    promote: Script
    heartbeat: Script
    forget: Script
    lease: Script

    @classmethod
    def register(cls, client: redis.Redis) -> Scripts:
        return cls(**{name: client.register_script(_source(name)) for name in _NAMES})

    def take_or_wait(
        self, client: redis.Redis, source: str, holding: str, count: int, block: float | None
    ) -> list[bytes]:
        """take.lua; on an empty source, BLMOVE one item so an idle holder wakes at once.

        ``block`` is in seconds; None returns at once (BLMOVE's 0 would wait forever).

        BLMOVE is the blocking form of the same reliable move (blocking commands cannot
        run inside a script); it keeps the submit-to-result latency of an idle pool low
        without polling.
        """
        held: list[bytes] = self.take(keys=[source, holding], args=[count])
        if held or block is None:
            return held
        # execute_command: redis-py's blmove() is typed for whole seconds only
        item = client.execute_command(  # type: ignore[no-untyped-call]
            "BLMOVE", source, holding, "LEFT", "RIGHT", block
        )
        return [item] if item is not None else []
