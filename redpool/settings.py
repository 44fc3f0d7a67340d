"""Where Redis is and how patient to be with it; the checks every role's settings share.

Each role keeps its own frozen settings dataclass beside its code (``WorkerSettings``,
``ProducerSettings``, ``SinkSettings``); every default is written once, in those classes, and
the CLI reads its option defaults from them. A value out of range raises `SettingError` when
the object is built, so a bad setting is one line before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redpool.errors import ConfigError, SettingError

DEFAULT_URL = "redis://localhost:6379/0"
MAX_REPLICAS = 16
"""The most replicas ``?replicas=N`` may ask every write to reach."""
MAX_BLOCK = 5.0
"""Seconds an idle role may block on Redis waiting for work (``block_seconds`` at most)."""


def netloc(host: str, port: int) -> str:
    """``host:port`` as a URL writes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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

    replicas: int = field(init=False, default=0)
    """Replicas each write must reach before a role goes on (``WAIT``), from the URL's
    ``?replicas=N``; 0, the default, waits for none (Redis replicates asynchronously)."""
    replicas_timeout: float = field(init=False, default=1.0)
    """Seconds a write waits for those replicas (the URL's ``?replicas_timeout=S``); past it
    the role goes on, and says so (see `redpool.replication`)."""
    redis_url: str = field(init=False, default="")
    """``url`` without redpool's own options, as redis-py takes it."""

    def __post_init__(self) -> None:
        require(self.wait >= 0, "wait", f"must be >= 0 s, not {self.wait:g}")
        require(
            self.socket_timeout >= 2 * MAX_BLOCK,
            "socket_timeout",
            f"must be >= {2 * MAX_BLOCK:g} s, not {self.socket_timeout:g}",
        )
        # Frozen, so the fields read from the URL are set the way dataclasses set them.
        url, options = _own_options(self.url)
        object.__setattr__(self, "redis_url", url)
        if "replicas" in options:
            object.__setattr__(self, "replicas", _replicas(options["replicas"]))
        if "replicas_timeout" in options:
            object.__setattr__(self, "replicas_timeout", _timeout(options["replicas_timeout"]))

    @classmethod
    def of(cls, target: str | RedisSettings | None) -> RedisSettings:
        """The API's ``redis=`` argument: a URL, settings, or None for the default URL."""
        if isinstance(target, RedisSettings):
            return target
        return cls(target or DEFAULT_URL)


OWN_OPTIONS = ("replicas", "replicas_timeout")
"""Query options of a Redis URL that are redpool's, not redis-py's: taken out of the URL."""


def _own_options(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without `OWN_OPTIONS`, and their values. A URL that cannot be taken apart is
    left as it is, for redis-py to refuse with its own reason."""
    if "?" not in url:
        return url, {}
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url, {}
    own = {k: v for k, v in pairs if k in OWN_OPTIONS}
    if not own:
        return url, {}
    rest = urlencode([(k, v) for k, v in pairs if k not in OWN_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), own


def _replicas(value: str) -> int:
    """``?replicas=N``: a URL option, so a bad one is a bad URL (no --replicas to name); the
    URL itself is not shown, as it may hold a password."""
    if not value.isdigit() or int(value) > MAX_REPLICAS:
        raise ConfigError(
            f"bad Redis URL option replicas={value[:20]!r}: must be a whole number "
            f"0..{MAX_REPLICAS}"
        )
    return int(value)


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0.001 <= seconds <= 60:  # also refuses nan
        raise ConfigError(
            f"bad Redis URL option replicas_timeout={value[:20]!r}: must be seconds, 0.001..60"
        )
    return seconds
