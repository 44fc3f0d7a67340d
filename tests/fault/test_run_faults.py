"""A run's edges under faults: a sink killed between writing and acknowledging, a producer
killed mid-stream. Real processes, a real redis-server; waits on observable state only."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from redpool.pipeline import Pipeline
from tests.procs import (
    ROOT,
    assert_exactly_once,
    assert_nothing_left,
    env,
    feed,
    producing,
    redpool,
    wait_for,
)
from tests.runs import PIPELINE, Run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("batch", [1, 3])
def test_a_sink_killed_between_writing_and_acknowledging_writes_each_result_once(
    run: Run, batch: int
) -> None:
    """SIGKILL right after the ``batch``-th batch is written and flushed, before its ack
    (the first batch: no ack recorded for the file yet). The restarted sink cuts the file
    back to the last acknowledged byte and writes the held batch again: each id once, where
    an at-least-once sink wrote that batch twice."""
    run.submit_many("echo", [[i] for i in range(400)], chunksize=1)
    run.producer.close()
    host = run.host("--exit-when-done")
    assert host.wait() == 0
    run.out.write_bytes(b'{"id":"from before","ok":true}\n')  # a file with a past of its own
    killed = subprocess.run(
        [
            *(sys.executable, "-P", "-m", "tests.killed_sink"),
            *(run.server.url, PIPELINE, str(run.out), str(batch)),
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    written = run.out.read_bytes().count(b"\n")
    assert written > 1 + 50 * (batch - 1), "the killed sink wrote its batch before the kill"
    done = redpool(
        "sink", "--redis", run.server.url, "--pipeline", PIPELINE, "--output", str(run.out)
    )
    assert done.returncode == 0 and b"run 1 complete" in done.stderr, done.stderr
    results = run.results()
    assert results[0]["id"] == "from before"
    assert_exactly_once(results[1:], set(run.ids))
    assert len(results) == 1 + len(run.ids)
    assert_nothing_left(run.client, PIPELINE)


def test_a_killed_producer_is_abandoned_when_its_lease_runs_out(run: Run) -> None:
    """SIGKILL a producer mid-stream: after its lease (3 s here) its part of the run ends as
    abandoned, what it submitted completes, and the sink says the run is INCOMPLETE and exits
    3 (it used to wait for the producer for ever)."""
    url = run.server.url
    run.producer.close()  # the fixture's producer submits nothing here
    proc = producing(url, PIPELINE, "--task", "echo", "--lease", "3")
    feed(proc, ["1", "2", "3"])
    wait_for(lambda: run.client.hget(run.key("stats"), "submitted") == b"3", what="3 tasks")
    proc.kill()
    proc.communicate()
    run.host("--exit-when-done")
    run.start_sink()
    assert run.sink is not None
    assert run.sink.wait(timeout=60) == 3
    err = (run.tmp / "sink.err").read_text()
    assert "INCOMPLETE (producer" in err and "abandoned" in err, err
    assert sorted(r["value"] for r in run.results()) == [1, 2, 3]
    assert_nothing_left(run.client, PIPELINE)


def test_an_outage_longer_than_a_producer_lease_abandons_no_producer(run: Run) -> None:
    """Redis away for 6 s, a producer lease of 3 s: when Redis is back every lease has run
    out on its clock, but the producer is alive and about to renew. A reaper that gets there
    first (here the test itself, while the producer is held stopped so it cannot win the
    race) must not call it abandoned: its next push would fail and the run end incomplete."""
    run.producer.close()
    url = run.server.url
    proc = producing(url, PIPELINE, "--task", "echo", "--lease", "3")
    feed(proc, ["1", "2"])
    wait_for(lambda: run.client.hget(run.key("stats"), "submitted") == b"2", what="2 tasks")
    run.server.stop()
    proc.send_signal(signal.SIGSTOP)
    time.sleep(6)  # the outage itself, longer than the lease: not a wait for a race
    run.server.start()
    run.client = run.server.client()
    reaper = Pipeline.connect(url, PIPELINE)
    assert reaper.expire_producers() == [], "abandoned while Redis was just back"
    proc.send_signal(signal.SIGCONT)
    run.host("--exit-when-done")
    run.start_sink()
    _, err = proc.communicate(b"3\n", timeout=60)
    assert proc.returncode == 0, err
    assert run.sink is not None and run.sink.wait(timeout=60) == 0
    sunk = (run.tmp / "sink.err").read_text()
    assert "complete: 3 result(s)" in sunk, sunk
    assert sorted(r["value"] for r in run.results()) == [1, 2, 3]
