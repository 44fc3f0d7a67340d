"""`redpool.Pool` under faults: a worker host killed mid-map, a caller killed mid-map, and
tasks that time out or kill their process. Real processes, a real redis-server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from redpool import Pool, TaskFailed
from tests import jobs
from tests.procs import ROOT, env, wait_for
from tests.runs import PIPELINE, Run

pytestmark = pytest.mark.slow

KILLED_CALLER = """
import sys
from redpool import Pool
from tests import jobs
pool = Pool(sys.argv[1], sys.argv[2], lease=3)
for i, value in enumerate(pool.imap(jobs.slow_echo, range(3000), 20)):
    if i == 20:
        print("answered", flush=True)
"""


def test_a_worker_host_killed_mid_imap_loses_and_repeats_nothing(run: Run) -> None:
    """SIGKILL the only host while imap waits: another host takes over (the dead one's tasks
    come back when its lease runs out), and imap yields every answer once, in order."""
    run.producer.close()
    first = run.host()
    with Pool(run.server.url, PIPELINE) as pool:
        answers = pool.imap(jobs.echo, range(3000), 50)
        got = [next(answers) for _ in range(100)]
        first.kill_host()
        run.host()
        got += list(answers)
    assert got == list(range(3000))


def test_a_caller_killed_mid_map_leaves_nothing_and_others_go_on(run: Run) -> None:
    """SIGKILL a process in the middle of Pool.imap: within its lease (3 s) worker hosts drop
    its reply list and skip its tasks not yet run; another caller's map completes."""
    run.producer.close()
    run.host()
    caller = subprocess.Popen(
        [sys.executable, "-c", KILLED_CALLER, run.server.url, PIPELINE],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env(),
    )
    assert caller.stdout is not None
    assert caller.stdout.readline() == b"answered\n"
    members: list[bytes] = run.client.zrange(run.key("callers"), 0, -1)  # type: ignore[assignment]
    (caller_id,) = [c.decode() for c in members]
    caller.kill()
    caller.communicate()
    with Pool(run.server.url, PIPELINE) as other:
        assert other.map(jobs.echo, range(500), 25) == list(range(500))
    wait_for(
        lambda: run.client.zscore(run.key("callers"), caller_id) is None,
        timeout=30,
        what="the dead caller to be dropped",
    )
    wait_for(lambda: run.client.llen(run.key("tasks")) == 0, timeout=30, what="its tasks skipped")
    assert not run.client.exists(run.key(f"replies:{caller_id}"))
    assert int(run.client.hget(run.key("stats"), "ok") or 0) < 3000 + 500, "all of it ran"


def test_a_task_that_times_out_or_kills_its_process_is_an_exception_not_a_hang(
    run: Run,
) -> None:
    run.producer.close()
    run.host()
    with Pool(run.server.url, PIPELINE) as pool:
        with pytest.raises(TaskFailed) as timed_out:
            pool.apply(jobs.hang, (1,))
        assert timed_out.value.type == "TaskTimeout"
        with pytest.raises(TaskFailed) as died:
            pool.apply(jobs.exit_hard, (1,))
        assert "died" in str(died.value) or died.value.type != "TaskTimeout"
