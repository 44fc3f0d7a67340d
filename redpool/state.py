"""One consistent reading of a pipeline: what `status`, the sink and `--exit-when-done` ask.

Counters are derived from the lists where Redis can count them (backlog, in flight, dead) and
kept in ``stats`` only where it cannot (submitted, drained, ok, failed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import redis

from redpool import codec
from redpool.keys import Keys

CLOSED = b"closed"


@dataclass(frozen=True)
class WorkerInfo:
    """One worker host (supervisor) as it last described itself."""

    id: str
    host: str
    pid: int
    processes: int
    lease_left: float
    """Seconds until its lease runs out; negative once it is presumed dead."""
    heartbeat_age: float
    """Seconds since its last heartbeat."""


@dataclass(frozen=True)
class Snapshot:
    backlog: int
    delayed: int
    in_flight: int
    results: int
    dead: int
    producers_open: int
    producers_closed: int
    stats: dict[str, int]
    workers: list[WorkerInfo] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        """The stream ended: someone joined and every producer that joined has closed."""
        return self.producers_closed > 0 and self.producers_open == 0

    @property
    def submitted(self) -> int:
        return self.stats.get("submitted", 0)

    @property
    def drained(self) -> int:
        return self.stats.get("drained", 0)

    @property
    def idle(self) -> bool:
        """Nothing is left to run: no backlog, no retry waiting, nothing in any worker's hands."""
        return self.backlog == 0 and self.delayed == 0 and self.in_flight == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "delayed": self.delayed,
            "in_flight": self.in_flight,
            "results_waiting": self.results,
            "dead": self.dead,
            "stream": "closed" if self.closed else "open",
            "producers": {"open": self.producers_open, "closed": self.producers_closed},
            **{k: self.stats.get(k, 0) for k in _STAT_NAMES},
            "workers": [vars(w) for w in self.workers],
        }


_STAT_NAMES = ("submitted", "ok", "failed", "retried", "requeued", "drained")


def read_workers(client: redis.Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """Supervisor id -> its self-description, for every host not yet reaped."""
    raw = cast(dict[bytes, bytes], client.hgetall(keys.workers))
    out: dict[str, dict[str, Any]] = {}
    for wid, info in raw.items():
        try:
            body = codec.loads(info)
        except codec.JSONDecodeError:
            continue
        if isinstance(body, dict):
            out[wid.decode()] = body
    return out


def inflight_keys(keys: Keys, workers: dict[str, dict[str, Any]]) -> list[str]:
    return [
        keys.inflight(wid, slot)
        for wid, info in workers.items()
        for slot in range(int(info.get("processes", 0)))
    ]


def snapshot(client: redis.Redis, keys: Keys) -> Snapshot:
    workers = read_workers(client, keys)
    held = inflight_keys(keys, workers)
    pipe = client.pipeline(transaction=True)
    pipe.llen(keys.tasks)
    pipe.zcard(keys.delayed)
    pipe.llen(keys.results)
    pipe.llen(keys.dead)
    pipe.hvals(keys.producers)
    pipe.hgetall(keys.stats)
    pipe.zrange(keys.leases, 0, -1, withscores=True)
    pipe.time()
    for key in held:
        pipe.llen(key)
    backlog, delayed, results, dead, producers, stats, leases, now, *lens = pipe.execute()
    now_ms = now[0] * 1000 + now[1] // 1000
    expiry = {wid.decode(): score for wid, score in leases}
    closed = sum(1 for v in producers if v == CLOSED)
    return Snapshot(
        backlog=backlog,
        delayed=delayed,
        in_flight=sum(lens),
        results=results,
        dead=dead,
        producers_open=len(producers) - closed,
        producers_closed=closed,
        stats={k.decode(): int(v) for k, v in stats.items()},
        workers=[
            WorkerInfo(
                id=wid,
                host=str(info.get("host", "?")),
                pid=int(info.get("pid", 0)),
                processes=int(info.get("processes", 0)),
                lease_left=round((expiry.get(wid, now_ms) - now_ms) / 1000, 1),
                heartbeat_age=round(
                    float(info.get("lease", 0)) - (expiry.get(wid, now_ms) - now_ms) / 1000, 1
                ),
            )
            for wid, info in sorted(workers.items())
        ],
    )
