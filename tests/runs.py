"""One pipeline run under test, against a redis-server the test may kill and restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from redpool.keys import Keys
from redpool.producer import Producer
from redpool.shard import Shard
from tests.procs import (
    ROOT,
    Host,
    assert_exactly_once,
    assert_nothing_left,
    env,
    ids_in,
    read_results,
    wait_for,
)
from tests.redis_server import RedisServer

PIPELINE = "fault"
LEASE = "1.5"


class Run:
    """One pipeline run under test: submit, start hosts and a sink, then check everything."""

    def __init__(self, server: RedisServer, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.client: redis.Redis = server.client()
        self.producer = Producer(server.url, PIPELINE)
        self.ids: list[str] = []
        self.out = tmp / "results.jsonl"
        self.sink: subprocess.Popen[bytes] | None = None
        self.hosts: list[Host] = []

    def key(self, name: str) -> str:
        return f"redpool:{{{PIPELINE}}}:{name}"

    def submit(self, task: str, *args: object) -> str:
        task_id = self.producer.submit(task, *args)
        self.ids.append(task_id)
        return task_id

    def submit_many(
        self, task: str, calls: list[list[object]], chunksize: int | None = None
    ) -> list[str]:
        """Submit in chunks (auto-sized unless ``chunksize``); returns the new ids."""
        start = self.producer.submitted
        self.producer.submit_many(task, ((c, None) for c in calls), chunksize)
        new = [f"{self.producer.id}-{i}" for i in range(start + 1, self.producer.submitted + 1)]
        self.ids += new
        return new

    def host(self, *extra: str, processes: int = 2) -> Host:
        log = self.tmp / f"host{len(self.hosts)}.log"
        h = Host(self.server.url, PIPELINE, "--lease", LEASE, *extra, log=log, processes=processes)
        self.hosts.append(h)
        return h

    def start_sink(self) -> None:
        self.sink_err = open(self.tmp / "sink.err", "wb")  # noqa: SIM115
        self.sink = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-m",
                "redpool.sink",
                "--redis",
                self.server.url,
                "--pipeline",
                PIPELINE,
                "--output",
                str(self.out),
            ],
            cwd=ROOT,
            env=env(),
            stderr=self.sink_err,
        )
        # Connected and draining once it holds the sink lease: only then is a Redis outage
        # an outage to ride out rather than "Redis unreachable at start".
        wait_for(lambda: bool(self.client.exists(self.key("sink"))), what="the sink to start")

    def clean_up(self) -> None:
        """Whatever the test did, leave no host or sink running."""
        for h in self.hosts:
            if h.proc.poll() is None:
                h.kill_host()
        if self.sink is not None:
            if self.sink.poll() is None:
                self.sink.kill()
                self.sink.wait()
            self.sink_err.close()

    def results(self) -> list[dict[str, Any]]:
        return read_results(self.out) if self.out.exists() else []

    def finish(self, timeout: float = 120) -> list[dict[str, Any]]:
        """Close the stream, wait for the sink, and check the promise: exactly one result
        for every submitted id, nothing left in flight."""
        self.producer.close()
        assert self.sink is not None
        assert self.sink.wait(timeout=timeout) == 0, (self.tmp / "sink.err").read_text()
        self.sink_err.close()
        results = self.results()
        assert_exactly_once(results, set(self.ids))
        assert len(results) == len(self.ids)
        for h in self.hosts:
            judged = h.waited
            if h.proc.poll() is None:
                h.signal(15)
            code = h.wait(timeout=60)
            assert judged or code == 0, h.output()
        assert_nothing_left(self.client, PIPELINE)
        return results

    def workers(self) -> dict[str, dict[str, Any]]:
        return Shard(self.client, Keys(PIPELINE)).workers()

    def holding(self, payload_id: str) -> tuple[str, int] | None:
        """(supervisor id, slot) of the child whose inflight list holds this task, if any."""
        for wid, info in self.workers().items():
            for slot in range(int(info["processes"])):
                for raw in self.client.lrange(self.key(f"inflight:{wid}:{slot}"), 0, -1):
                    if payload_id in ids_in(raw):  # not a substring: -1 is in -17
                        return wid, slot
        return None

    def child_pid(self, wid: str, slot: int) -> int:
        return int(self.workers()[wid]["children"][slot])
