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
from redpool.keys import ABANDONED, ABORTED, CLOSED, RUNNING, Stat


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
    done: int = 0
    """Answers its children wrote, as of its last heartbeat."""


@dataclass(frozen=True)
class ProducerInfo:
    """One producer of the current run, as the producers hash and its lease say."""

    id: str
    state: str
    """``open``, ``closed``, ``aborted`` or ``abandoned``."""
    reason: str = ""
    """Why it aborted."""
    batches: int = 0
    """Batches pushed so far (open producers)."""
    lease_left: float | None = None
    """Seconds until an open producer's lease runs out; negative once it ran out and no one
    has called it abandoned yet."""


@dataclass(frozen=True)
class RunInfo:
    """The pipeline's current run (see run.lua)."""

    id: int
    state: str
    """``running``, ``complete`` or ``incomplete``."""
    started: float
    """Unix seconds, Redis clock."""
    ended: float | None = None

    @property
    def over(self) -> bool:
        return self.state != RUNNING


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
    stats: dict[str, int]
    workers: list[WorkerInfo] = field(default_factory=list)
    elements: int = 0
    """Elements in the tasks list (what LLEN counts)."""
    exact: bool = True
    run: RunInfo | None = None
    """None before any producer joined (or after an ended run's keys expired)."""
    producers: list[ProducerInfo] = field(default_factory=list)
    """Of the current run."""
    last_run: dict[str, Any] | None = None
    """The run before, summed up (see `redpool.keys.Keys.last_run`)."""
    shards: int = 1
    """Shards summed in this reading (see `redpool.pipeline`)."""

    @property
    def closed(self) -> bool:
        """The stream ended: someone joined and every producer that joined has left."""
        return bool(self.producers) and all(p.state != OPEN for p in self.producers)

    def producers_in(self, state: str) -> list[ProducerInfo]:
        return [p for p in self.producers if p.state == state]

    @property
    def submitted(self) -> int:
        return self.stats.get(Stat.SUBMITTED, 0)

    @property
    def drained(self) -> int:
        return self.stats.get(Stat.DRAINED, 0)

    @property
    def results_waiting(self) -> int:
        """Answers in the results list by the counters (the workers' bound), not by reading
        the list: what workers wrote less what the sink took."""
        written = self.stats.get(Stat.OK, 0) + self.stats.get(Stat.FAILED, 0)
        written -= self.stats.get(Stat.REPLIED, 0)  # in callers' reply lists, not results
        return max(0, written - self.stats.get(Stat.SUNK, 0))

    @property
    def idle(self) -> bool:
        """Nothing is left to run: no backlog, no retry waiting, nothing in any worker's hands."""
        return self.backlog == 0 and self.delayed == 0 and self.in_flight == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "backlog": self.backlog,
            "backlog_elements": self.elements,
            "exact": self.exact,
            "delayed": self.delayed,
            "in_flight": self.in_flight,
            "results_waiting": self.results,
            "dead": self.dead,
            "stream": "closed" if self.closed else "open",
            "run": vars(self.run) if self.run else None,
            "producers": [vars(p) for p in self.producers],
            "last_run": self.last_run,
            **{str(k): self.stats.get(k, 0) for k in Stat},
            "workers": [vars(w) for w in self.workers],
        }


OPEN = "open"
CLOSED_STATE = CLOSED.decode()


def summed(parts: list[Snapshot]) -> Snapshot:
    """A sharded pipeline's snapshot: its shards' counts summed; the run, its producers and
    the worker hosts as the head (the first) has them, with the last run's counters summed."""
    head = parts[0]
    if len(parts) == 1:
        return head
    stats: dict[str, int] = {}
    for part in parts:
        for name, value in part.stats.items():
            stats[name] = stats.get(name, 0) + value
    last = head.last_run
    if last is not None:
        last = dict(last, stats=dict(last.get("stats") or {}))
        for part in parts[1:]:
            if (part.last_run or {}).get("id") != last.get("id"):
                continue  # a shard whose part of a run never started (nothing of it there)
            for name, value in ((part.last_run or {}).get("stats") or {}).items():
                last["stats"][name] = last["stats"].get(name, 0) + value
    return Snapshot(
        backlog=sum(p.backlog for p in parts),
        delayed=sum(p.delayed for p in parts),
        in_flight=sum(p.in_flight for p in parts),
        results=sum(p.results for p in parts),
        dead=sum(p.dead for p in parts),
        stats=stats,
        workers=head.workers,
        elements=sum(p.elements for p in parts),
        exact=all(p.exact for p in parts),
        run=head.run,
        producers=head.producers,
        last_run=last,
        shards=len(parts),
    )


def producer_state(raw: bytes) -> tuple[str, str, int]:
    """A producer's value in the producers hash as (state, reason, batches)."""
    if raw.isdigit():
        return OPEN, "", int(raw)
    if raw in (CLOSED, ABANDONED):
        return raw.decode(), "", 0
    if raw.startswith(ABORTED):
        return ABORTED.decode(), raw[len(ABORTED) :].lstrip(b": ").decode("utf-8", "replace"), 0
    return raw.decode("utf-8", "replace"), "", 0


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
    queue, delayed, results, dead, producers, stats, leases, workers, now, held, exact = reply[:11]
    run, producer_leases, last_run = reply[11:]
    now_ms = redis_ms(now)
    expiry = {wid.decode(): int(float(ms)) for wid, ms in pairs(leases)}
    return Snapshot(
        backlog=int(queue[1]),
        elements=int(queue[0]),
        exact=bool(exact),
        delayed=int(delayed),
        in_flight=int(held[1]),
        results=int(results[1]),
        dead=int(dead),
        stats={k.decode(): int(v) for k, v in pairs(stats)},
        workers=[
            _info(wid, info, expiry.get(wid, now_ms) - now_ms)
            for wid, info in sorted(descriptions(pairs(workers)).items())
        ],
        run=_run(dict(pairs(run))),
        producers=_producers(pairs(producers), dict(pairs(producer_leases)), now_ms),
        last_run=_last_run(last_run),
    )


def _run(fields: dict[bytes, bytes]) -> RunInfo | None:
    try:
        ended = fields.get(b"ended")
        return RunInfo(
            id=int(fields[b"id"]),
            state=fields[b"state"].decode(),
            started=int(fields[b"started"]) / 1000,
            ended=int(ended) / 1000 if ended else None,
        )
    except (KeyError, ValueError):
        return None


def _producers(
    entries: Iterable[tuple[bytes, bytes]], leases: dict[bytes, bytes], now_ms: int
) -> list[ProducerInfo]:
    out = []
    for pid, raw in entries:
        state, reason, batches = producer_state(raw)
        expiry = leases.get(pid)
        left = round((float(expiry) - now_ms) / 1000, 1) if expiry is not None else None
        out.append(ProducerInfo(pid.decode(), state, reason, batches, left))
    return sorted(out, key=lambda p: p.id)


def _last_run(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        body = codec.loads(raw)
    except codec.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


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
        done=done if isinstance(done := info.get("done", 0), int) else 0,
    )
