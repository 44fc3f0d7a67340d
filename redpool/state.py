"""A reading of a pipeline: what `redpool status`, the sink and `--exit-when-done` ask.

Counters are derived from the lists where Redis can count them (backlog, in flight, dead) and
kept in ``stats`` only where it cannot (submitted, drained, ok, failed). snapshot.lua reads
them all in one step, in-flight lists included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redpool import codec
from redpool.connection import redis_ms
from redpool.keys import CLOSED, Stat


@dataclass(frozen=True)
class WorkerInfo:
    """One worker host as it last described itself."""

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
    """Counts of tasks, not of list elements (a chunk is one element of many tasks), except
    ``elements``. ``exact`` is False when a long list's tasks were estimated from its first
    elements."""

    backlog: int
    delayed: int
    in_flight: int
    results: int
    dead: int
    closed: bool
    """The stream ended: someone joined and every producer that joined has closed."""
    producers_open: int
    producers_closed: int
    stats: dict[str, int]
    workers: list[WorkerInfo] = field(default_factory=list)
    elements: int = 0
    """Elements in the tasks list (what LLEN counts)."""
    exact: bool = True

    @property
    def submitted(self) -> int:
        return self.stats.get(Stat.SUBMITTED, 0)

    @property
    def drained(self) -> int:
        return self.stats.get(Stat.DRAINED, 0)

    @property
    def idle(self) -> bool:
        """Nothing is left to run: no backlog, no retry waiting, nothing in any worker's hands."""
        return self.backlog == 0 and self.delayed == 0 and self.in_flight == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "backlog_elements": self.elements,
            "exact": self.exact,
            "delayed": self.delayed,
            "in_flight": self.in_flight,
            "results_waiting": self.results,
            "dead": self.dead,
            "stream": "closed" if self.closed else "open",
            "producers": {"open": self.producers_open, "closed": self.producers_closed},
            **{str(k): self.stats.get(k, 0) for k in Stat},
            "workers": [vars(w) for w in self.workers],
        }


def stream_closed(producers: list[bytes]) -> bool:
    """Someone joined and every producer that joined has closed."""
    return bool(producers) and all(p == CLOSED for p in producers)


def descriptions(entries: Iterable[tuple[bytes, bytes]]) -> dict[str, dict[str, Any]]:
    """The workers hash, parsed; an entry that is not a JSON object is skipped."""
    out: dict[str, dict[str, Any]] = {}
    for wid, info in entries:
        try:
            body = codec.loads(info)
        except codec.JSONDecodeError:
            continue
        if isinstance(body, dict):
            out[wid.decode()] = body
    return out


def processes(info: dict[str, Any]) -> int:
    """How many children (and so in-flight lists) a worker host said it has."""
    value = info.get("processes", 0)
    return value if isinstance(value, int) and value > 0 else 0


def pairs(flat: list[bytes]) -> Iterable[tuple[bytes, bytes]]:
    """A flat Redis reply (field, value, field, value ...) as pairs."""
    return zip(flat[::2], flat[1::2], strict=True)


def from_reply(reply: list[Any]) -> Snapshot:
    """snapshot.lua's reply as a Snapshot."""
    queue, delayed, results, dead, producers, stats, leases, workers, now, held, exact = reply
    now_ms = redis_ms(now)
    expiry = {wid.decode(): int(float(ms)) for wid, ms in pairs(leases)}
    closed = sum(1 for v in producers if v == CLOSED)
    return Snapshot(
        backlog=int(queue[1]),
        elements=int(queue[0]),
        exact=bool(exact),
        delayed=int(delayed),
        in_flight=int(held[1]),
        results=int(results[1]),
        dead=int(dead),
        closed=stream_closed(producers),
        producers_open=len(producers) - closed,
        producers_closed=closed,
        stats={k.decode(): int(v) for k, v in pairs(stats)},
        workers=[
            _info(wid, info, expiry.get(wid, now_ms) - now_ms)
            for wid, info in sorted(descriptions(pairs(workers)).items())
        ],
    )


def _info(wid: str, info: dict[str, Any], left_ms: float) -> WorkerInfo:
    lease = info.get("lease", 0)
    lease = float(lease) if isinstance(lease, int | float) else 0.0
    pid = info.get("pid", 0)
    return WorkerInfo(
        id=wid,
        host=str(info.get("host", "?")),
        pid=pid if isinstance(pid, int) else 0,
        processes=processes(info),
        lease_left=round(left_ms / 1000, 1),
        heartbeat_age=round(lease - left_ms / 1000, 1),
    )
