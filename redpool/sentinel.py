"""``redis+sentinel://`` URLs: a primary that Redis Sentinel watches and fails over.

    redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB][?OPTIONS]

``rediss+sentinel://`` speaks TLS to the primary. The password in the URL is the primary's,
as in a ``redis://`` URL; ``?sentinel_password=`` (and ``?sentinel_username=``) are for the
sentinels, which are often run without one. Other options are redis-py's, as in a
``redis://`` URL, for the connections to the primary.

The client is redis-py's ``Sentinel(...).master_for(SERVICE)``: every new connection asks the
sentinels where the primary is, so after a failover the next connection reaches the new one
(the old one's READONLY, and the sentinels' "no primary" while they elect one, are
ConnectionErrors to redis-py, so `redpool.connection.Outage` rides them out as an outage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel, SentinelConnectionPool

from redpool.settings import netloc

SCHEMES = ("redis+sentinel", "rediss+sentinel")
_SENTINEL_OPTIONS = ("sentinel_password", "sentinel_username")


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


@dataclass(frozen=True)
class SentinelURL:
    """A ``redis+sentinel://`` URL taken apart; `parse` raises ValueError saying what is
    wrong with it (without the URL: the caller shows it with its password masked)."""

    sentinels: list[tuple[str, int]]
    service: str
    tls: bool = False
    sentinel_auth: dict[str, str] = field(default_factory=dict)
    """``username``/``password`` for the sentinels."""
    primary: dict[str, Any] = field(default_factory=dict)
    """redis-py's connection arguments for the primary: db, username, password, options."""

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in SCHEMES:
            raise ValueError(f"not a sentinel URL (it must start with {' or '.join(SCHEMES)}://)")
        parts = urlsplit(f"redis://{rest}")
        if parts.fragment:
            raise ValueError("a sentinel URL has no #fragment")
        userinfo, _, hosts = parts.netloc.rpartition("@")
        sentinels = [_host_port(h) for h in hosts.split(",")]
        path = [unquote(p) for p in parts.path.split("/")[1:]]
        if not path or not path[0]:
            raise ValueError("no service name: put the primary's name after the sentinels (/NAME)")
        if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError(
                f"expected /SERVICE or /SERVICE/DB after the hosts, not {parts.path!r}"
            )
        # redis-py reads the user, password and options; the host here is a stand-in.
        at = "@" if userinfo else ""
        primary = parse_url(f"redis://{userinfo}{at}localhost?{parts.query}")  # type: ignore[no-untyped-call]
        for key in ("host", "port", "connection_class"):
            primary.pop(key, None)
        if len(path) == 2:
            primary["db"] = int(path[1])
        auth = {k[9:]: primary.pop(k) for k in _SENTINEL_OPTIONS if k in primary}
        return cls(sentinels, path[0], scheme.lower() == "rediss+sentinel", auth, primary)

    def shown(self) -> str:
        """The URL for messages: its passwords ``***`` (the sentinels' are in the query, which
        is not shown)."""
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        auth = "***@" if self.primary.get("password") or self.primary.get("username") else ""
        hosts = ",".join(netloc(h, p) for h, p in self.sentinels)
        return f"{scheme}://{auth}{hosts}/{self.service}/{self.primary.get('db', 0)}"


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"each sentinel must be HOST:PORT, not {text!r}")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError(f"each sentinel must be HOST:PORT, not {text!r}")
    return host, int(port)


class Pool(SentinelConnectionPool):
    """redis-py's pool for a primary watched by sentinels, which knows how to show itself."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        self.shown: str = kwargs.pop("shown")
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]

    def disconnect(self, inuse_connections: bool = True) -> None:
        """Also the connections to the sentinels, which redis-py leaves open when the client
        closes; each reconnects when next asked (a failover calls this too)."""
        super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            sentinel.connection_pool.disconnect(inuse_connections)

    def where(self) -> str:
        """The URL, masked, and the primary this pool last found (when it has found one)."""
        found = self.master_address
        if found is None:
            return self.shown
        return f"{self.shown} (primary {netloc(str(found[0]), int(found[1]))})"


def client(url: SentinelURL, **connection: Any) -> redis.Redis:
    """A client of the primary ``url`` names; ``connection`` (timeouts, retry) is for both the
    primary's connections and the sentinels'."""
    sentinel_kwargs = {**connection, **url.sentinel_auth}
    manager = Sentinel(url.sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    primary = {**connection, **url.primary}
    if url.tls:
        primary["ssl"] = True
    made: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
        url.service, connection_pool_class=Pool, shown=url.shown(), **primary
    )
    return made


def where(client: redis.Redis) -> str | None:
    """Where a sentinel client points, for messages; None for any other client."""
    pool = client.connection_pool
    return pool.where() if isinstance(pool, Pool) else None


def why_no_primary(client: redis.Redis) -> str:
    """Why a sentinel client finds no primary, asked of each sentinel once: none answered,
    none knows the service, or they say it is down (a failover under way)."""
    pool = client.connection_pool
    assert isinstance(pool, Pool)
    service = pool.service_name
    answered: list[dict[str, Any]] = []
    failures: list[str] = []
    for sentinel in pool.sentinel_manager.sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        try:
            masters = sentinel.sentinel_masters()
        except redis.RedisError as exc:
            failures.append(f"{netloc(kwargs['host'], kwargs['port'])}: {exc}")
            continue
        answered.append(masters.get(service) or {})
    if not answered:
        return f"no sentinel answered ({'; '.join(failures)})"
    if not any(answered):
        of = f"{len(answered)} of {len(pool.sentinel_manager.sentinels)}"
        return f"no sentinel that answered ({of}) knows a primary named {service!r}"
    return f"the sentinels say the primary of {service!r} is down"
