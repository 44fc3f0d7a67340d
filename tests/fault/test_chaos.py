"""A seeded, random schedule of faults against a running pipeline.

Beside the fixed fault tests: producers stream a few thousand tasks while the test, step by
step, SIGKILLs or SIGSTOPs a child, a supervisor, a whole host, the sink or a producer,
restarts Redis (SIGKILL; AOF with fsync always) or pushes a poison payload, and checks what
must hold after every step (the output file so far: whole lines, no id twice) and at the end
(exactly one result per task and per output line, nothing left in flight, every host alive
or reaped).

``--chaos-seconds`` (default 45) sets how long faults go on; ``--chaos-seed`` replays a run
(the seed is printed, and named in every failure).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.procs import ROOT, Host, assert_nothing_left, env, wait_for
from tests.runs import PIPELINE, Run

pytestmark = pytest.mark.slow

LINES = 400
"""Tasks per producer: a producer is started at the beginning and after most steps."""


class Chaos:
    def __init__(self, run: Run, rng: random.Random, seed: int) -> None:
        self.run = run
        self.rng = rng
        self.seed = seed
        self.producers: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        """Indexes in ``producers`` of those killed."""
        self.poison: list[str] = []
        self.sink: subprocess.Popen[bytes] | None = None
        self.sink_log = open(run.tmp / "sink.log", "ab")  # noqa: SIM115 - closed in close()
        self.log: list[str] = []
        self.inputs = 0

    # -- the roles -----------------------------------------------------------------------

    def hosts(self) -> list[Host]:
        return [h for h in self.run.hosts if h.proc.poll() is None]

    def start_producer(self) -> None:
        self.inputs += 1
        path = self.run.tmp / f"in{self.inputs}.jsonl"
        task = self.rng.choice(["echo", "slow_echo"])
        base = self.inputs * 100_000  # each producer's values are its own: results tell whose
        values = range(base, base + LINES)
        lines = (f"[{v}, 0.001]" if task == "slow_echo" else str(v) for v in values)
        path.write_text("".join(f"{line}\n" for line in lines))
        self.producers.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-P", "-m", "redpool", "produce"),
                    *("--redis", self.run.server.url, "--pipeline", PIPELINE),
                    *("--task", task, "--input", str(path), "--lease", "3", "-q"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=self.sink_log,
                cwd=ROOT,
                env=env(),
            )
        )

    def start_sink(self) -> None:
        self.sink = subprocess.Popen(
            [
                *(sys.executable, "-P", "-m", "redpool", "sink", "--follow", "-q"),
                *("--redis", self.run.server.url, "--pipeline", PIPELINE),
                *("--output", str(self.run.out)),
            ],
            stderr=self.sink_log,
            cwd=ROOT,
            env=env(),
        )

    def done(self) -> int:
        stats = self.run.client.hgetall(self.run.key("stats"))
        return sum(int(stats.get(k, 0)) for k in (b"ok", b"failed"))

    # -- the faults ----------------------------------------------------------------------

    def kill_child(self) -> str:
        host = self.rng.choice(self.hosts())
        children = host.children()
        if children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.rng.choice(children), signal.SIGKILL)
        return f"SIGKILL a child of host {host.proc.pid}"

    def stop_child(self) -> str:
        host = self.rng.choice(self.hosts())
        children = host.children()
        if not children:
            return "no child to stop"
        pid, seconds = self.rng.choice(children), self.rng.uniform(0.2, 1.5)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
            time.sleep(seconds)  # the stall itself
            os.kill(pid, signal.SIGCONT)
        return f"SIGSTOP a child of host {host.proc.pid} for {seconds:.1f} s"

    def kill_host(self) -> str:
        host = self.rng.choice(self.hosts())
        host.kill_host()
        self.run.host()
        return f"SIGKILL host {host.proc.pid} whole; a new host"

    def stall_supervisor(self) -> str:
        """Longer than its lease: another host reaps it while its children still run."""
        host = self.rng.choice(self.hosts())
        seconds = self.rng.uniform(2.0, 4.0)
        host.signal(signal.SIGSTOP)
        time.sleep(seconds)  # the stall itself, past the 1.5 s lease
        host.signal(signal.SIGCONT)
        return f"SIGSTOP the supervisor of host {host.proc.pid} for {seconds:.1f} s"

    def kill_sink(self) -> str:
        assert self.sink is not None
        self.sink.kill()
        self.sink.wait()
        self.start_sink()
        return "SIGKILL the sink; a new sink"

    def kill_producer(self) -> str:
        running = [p for p in self.producers if p.poll() is None]
        if not running:
            return "no producer running"
        victim = self.rng.choice(running)
        victim.kill()
        victim.wait()
        self.killed.add(self.producers.index(victim))
        return f"SIGKILL producer {victim.pid}"

    def restart_redis(self) -> str:
        self.run.server.kill()
        self.run.server.start()
        self.run.client = self.run.server.client()
        return "SIGKILL redis-server; start it again (AOF, fsync always)"

    def push_poison(self) -> str:
        """A task whose arguments nest deeper than JSON encoders go: it parses, and cannot be
        written again. It must end with one error result under its id."""
        task_id = f"poison-{len(self.poison) + 1}"
        body = b'{"id":"%s","task":"echo","args":[%s1%s]}' % (
            task_id.encode(),
            b"[" * 300,
            b"]" * 300,
        )
        self.run.client.rpush(self.run.key("tasks"), body)
        self.poison.append(task_id)
        return f"RPUSH poison payload {task_id}"

    # -- what must hold ------------------------------------------------------------------

    def check_output(self) -> list[dict[str, Any]]:
        """Whole lines, each id once (the file output is exactly-once at every moment: a
        line past the acknowledged mark is cut when the sink restarts, before it writes)."""
        raw = self.run.out.read_bytes() if self.run.out.exists() else b""
        complete = raw[: raw.rfind(b"\n") + 1]  # the sink may be mid-write
        results = [orjson.loads(line) for line in complete.splitlines()]
        twice = [i for i, n in Counter(str(r["id"]) for r in results).items() if n > 1]
        assert not twice, self.why(f"ids twice in the output: {twice[:5]}")
        return results

    def why(self, what: str) -> str:
        return f"{what} (seed {self.seed}; steps: {'; '.join(self.log)})"

    def close(self) -> None:
        for p in self.producers:
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.sink is not None and self.sink.poll() is None:
            self.sink.kill()
            self.sink.wait()
        self.sink_log.close()


@pytest.fixture
def chaos_seconds(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("--chaos-seconds"))


@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    given = request.config.getoption("--chaos-seed")
    return int(given) if given is not None else random.SystemRandom().randrange(2**32)


def test_a_random_schedule_of_faults(run: Run, chaos_seconds: float, chaos_seed: int) -> None:
    print(f"chaos seed {chaos_seed}, {chaos_seconds:g} s (replay: --chaos-seed {chaos_seed})")
    rng = random.Random(chaos_seed)
    run.producer.close()  # the fixture's own producer submits nothing here
    chaos = Chaos(run, rng, chaos_seed)
    faults: list[tuple[Callable[[], str], int]] = [
        (chaos.kill_child, 4),
        (chaos.stop_child, 2),
        (chaos.kill_host, 2),
        (chaos.stall_supervisor, 2),
        (chaos.kill_sink, 2),
        (chaos.kill_producer, 1),
        (chaos.restart_redis, 1),
        (chaos.push_poison, 1),
    ]
    try:
        run.host()
        run.host()
        chaos.start_sink()
        chaos.start_producer()
        deadline = time.monotonic() + chaos_seconds
        while time.monotonic() < deadline:
            before = chaos.done()
            fault = rng.choices([f for f, _ in faults], weights=[w for _, w in faults])[0]
            chaos.log.append(fault())
            if rng.random() < 0.6:
                chaos.start_producer()
            # the pipeline moves on after each fault (progress, not a fixed wait)
            wait_for(
                lambda before=before: (
                    chaos.done() > before  # type: ignore[misc]
                    or all(p.poll() is not None for p in chaos.producers)
                ),
                timeout=60,
                what=chaos.why("progress after the step"),
            )
            chaos.check_output()
        finish(chaos)
    finally:
        chaos.close()


def finish(chaos: Chaos) -> None:
    """Let every producer end, wait until every submitted task's result is written, stop the
    sink, and check the promise."""
    run = chaos.run
    for p in chaos.producers:
        p.wait(timeout=120)
    pipe_done = _ended(chaos)
    wait_for(pipe_done, timeout=120, what=chaos.why("the last run to end"))
    assert chaos.sink is not None
    chaos.sink.send_signal(signal.SIGTERM)
    assert chaos.sink.wait(timeout=60) == 0, chaos.why("the sink's exit")
    results = chaos.check_output()
    raw = run.out.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == len(results), chaos.why("torn lines")
    by_producer: dict[str, set[int]] = {}
    for r in results:
        prefix, _, number = str(r["id"]).rpartition("-")
        if prefix.startswith("poison"):
            continue
        by_producer.setdefault(prefix, set()).add(int(number))
    for prefix, numbers in by_producer.items():
        # pushes are in order and exactly once: a producer's ids are 1..k, none missing
        assert numbers == set(range(1, max(numbers) + 1)), chaos.why(f"ids of {prefix}")
    values = Counter(r["value"] for r in results if not str(r["id"]).startswith("poison"))
    for index in range(len(chaos.producers)):
        base = (index + 1) * 100_000
        got = [values[v] for v in range(base, base + LINES)]
        assert all(n <= 1 for n in got), chaos.why(f"producer {index}: a value twice")
        if index not in chaos.killed:  # every result of a producer that ran to its end
            assert all(got), chaos.why(f"producer {index}: {got.count(0)} results missing")
        else:  # a killed producer's pushes are in order: what it sent is a prefix
            sent = sum(got)
            assert all(got[:sent]), chaos.why(f"producer {index}: a gap in what it sent")
    poisoned = {str(r["id"]): r for r in results if str(r["id"]).startswith("poison")}
    assert sorted(poisoned) == sorted(chaos.poison), chaos.why("a result per poison payload")
    assert not any(r["ok"] for r in poisoned.values())
    assert_nothing_left(run.client, PIPELINE)
    wait_for(_every_host_alive_or_reaped(chaos), timeout=30, what=chaos.why("reaping"))


def _ended(chaos: Chaos) -> Callable[[], bool]:
    def ended() -> bool:
        client, key = chaos.run.client, chaos.run.key
        state = client.hget(key("run"), "state")
        stats = client.hgetall(key("stats"))
        drained = int(stats.get(b"drained", 0)) >= int(stats.get(b"submitted", 0))
        return state in (b"complete", b"incomplete") and drained and not client.llen(key("results"))

    return ended


def _every_host_alive_or_reaped(chaos: Chaos) -> Callable[[], bool]:
    def settled() -> bool:
        client, key = chaos.run.client, chaos.run.key
        registered = {k.decode() for k in client.hkeys(key("workers"))}  # type: ignore[union-attr]
        now_s, now_us = client.time()
        now = now_s * 1000 + now_us // 1000
        lapsed = client.zrangebyscore(key("leases"), "-inf", now)
        return not lapsed and len(registered) == len(chaos.hosts())

    return settled
