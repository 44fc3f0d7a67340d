"""Chunks under faults: every task of a chunk still ends with exactly one result.

A chunk is many tasks in one element of the queue; these tests make one of its tasks block
(the gate task, released by a file) and then kill, fail or wait around it.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.procs import wait_for
from tests.runs import Run

pytestmark = pytest.mark.slow


def by_id(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): r for r in results}


def gates(tmp_path: Path, count: int, blocked: int) -> tuple[list[list[object]], Path]:
    """Arguments for ``count`` gate tasks of which only number ``blocked`` waits (for the file
    returned); the others pass at once."""
    calls: list[list[object]] = []
    for i in range(count):
        path = tmp_path / f"gate-{i}"
        if i != blocked:
            path.touch()
        calls.append([i, str(path)])
    return calls, tmp_path / f"gate-{blocked}"


def test_sigkill_a_child_mid_chunk(run: Run, tmp_path: Path) -> None:
    """The child holding a chunk dies on its 11th task: the chunk goes back, the task that
    was running charged an attempt, its chunk-mates not; each ends with one result."""
    run.host()
    run.start_sink()
    calls, release = gates(tmp_path, 20, blocked=10)
    ids = run.submit_many("gate", calls, chunksize=20)
    wait_for(Path(f"{release}.running").exists, what="the chunk's 11th task to run")
    holder = run.holding(ids[10])
    assert holder is not None
    os.kill(run.child_pid(*holder), signal.SIGKILL)
    release.touch()
    results = by_id(run.finish())
    assert results[ids[10]]["attempts"] == 1
    assert all("attempts" not in results[i] for i in ids[:10] + ids[11:])


def test_sigkill_a_whole_host_mid_chunk(run: Run, tmp_path: Path) -> None:
    """A host dies with a chunk half run: another host reaps it after its lease and runs the
    chunk again, every task of it charged one attempt; each ends with one result."""
    first = run.host()
    run.start_sink()
    calls, release = gates(tmp_path, 20, blocked=10)
    ids = run.submit_many("gate", calls, chunksize=20)
    wait_for(Path(f"{release}.running").exists, what="the chunk's 11th task to run")
    dead = next(iter(run.workers()))
    first.kill_host()
    run.host()
    wait_for(lambda: dead not in run.workers(), what="the dead host to be reaped")
    release.touch()
    results = by_id(run.finish())
    assert {results[i]["attempts"] for i in ids} == {1}


def test_a_failing_task_in_a_chunk_is_retried_alone(run: Run, tmp_path: Path) -> None:
    """One task of a chunk fails twice, then succeeds: it alone is retried; each of its
    chunk-mates runs once."""
    run.host()
    run.start_sink()
    calls: list[list[object]] = [[i, str(tmp_path), 2 if i == 5 else 0] for i in range(20)]
    ids = run.submit_many("flaky", calls, chunksize=20)
    results = by_id(run.finish())
    runs = {i: int((tmp_path / f"flaky-{i}").read_text()) for i in range(20)}
    assert runs == {i: 3 if i == 5 else 1 for i in range(20)}
    assert results[ids[5]]["ok"] is True and results[ids[5]]["attempts"] == 2
    assert all(
        results[i]["ok"] is True and "attempts" not in results[i] for i in ids if i != ids[5]
    )


def test_a_slow_task_hands_its_chunk_mates_to_the_other_process(run: Run, tmp_path: Path) -> None:
    """A task that blocks keeps its child, but not the tasks behind it in its chunk: those go
    back to the queue and the other child runs them, while the slow one still runs."""
    run.host()
    run.start_sink()
    calls, release = gates(tmp_path, 40, blocked=3)
    ids = run.submit_many("gate", calls, chunksize=40)
    wait_for(Path(f"{release}.running").exists, what="the slow task to run")
    behind = set(ids[4:])
    wait_for(
        lambda: behind <= {str(r["id"]) for r in run.results()},
        what="the tasks behind the slow one to finish elsewhere",
    )
    assert ids[3] not in {str(r["id"]) for r in run.results()}, "the slow task is still running"
    release.touch()
    results = by_id(run.finish())
    assert results[ids[3]]["ok"] is True and "attempts" not in results[ids[3]]


def test_max_tasks_per_child_is_exact(run: Run) -> None:
    """--max-tasks-per-child 10: no process runs an 11th task, even mid-chunk (the rest of
    its chunk goes back with its commit)."""
    run.host("--max-tasks-per-child", "10")
    run.start_sink()
    run.submit_many("whoami", [[i] for i in range(300)], chunksize=25)
    results = run.finish()
    per_process = Counter(r["value"] for r in results)
    assert max(per_process.values()) <= 10, per_process.most_common(3)
    assert len(per_process) >= 30
