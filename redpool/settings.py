"""Where Redis is and how patient to be with it; the checks every role's settings share.

Each role keeps its own frozen settings dataclass beside its code (``WorkerSettings``,
``ProducerSettings``, ``SinkSettings``); every default is written once, in those classes, and
the CLI reads its option defaults from them. A value out of range raises `SettingError` when
the object is built, so a bad setting is one line before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from redpool.errors import SettingError

DEFAULT_URL = "redis://localhost:6379/0"
MAX_BLOCK = 5.0
"""Seconds an idle role may block on Redis waiting for work (``block_seconds`` at most)."""


def require(ok: bool, setting: str, problem: str) -> None:
    """Refuse a setting: ``problem`` says what range it must be in, and what it was."""
    if not ok:
        raise SettingError(setting, problem)


def require_range(setting: str, value: float, low: float, high: float) -> None:
    """Refuse a setting outside ``low..high`` (both included)."""
    require(low <= value <= high, setting, f"must be {low:g}..{high:g}, not {value:g}")


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is and how patient to be with it."""

    url: str = DEFAULT_URL
    wait: float = 10.0
    """Seconds to wait for Redis when a role starts (compose starts Redis alongside us)."""
    socket_timeout: float = 15.0
    """Seconds a reply may take; at least twice the longest blocking command a role may send
    (an idle worker's or sink's wait for work, `MAX_BLOCK` at most)."""

    def __post_init__(self) -> None:
        require(self.wait >= 0, "wait", f"must be >= 0 s, not {self.wait:g}")
        require(
            self.socket_timeout >= 2 * MAX_BLOCK,
            "socket_timeout",
            f"must be >= {2 * MAX_BLOCK:g} s, not {self.socket_timeout:g}",
        )

    @classmethod
    def of(cls, target: str | RedisSettings | None) -> RedisSettings:
        """The API's ``redis=`` argument: a URL, settings, or None for the default URL."""
        if isinstance(target, RedisSettings):
            return target
        return cls(target or DEFAULT_URL)
