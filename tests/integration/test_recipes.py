"""The recipes of examples/ (map-reduce word count, a job runner with a bound on jobs in
flight, a stream consumer that POSTs its results) against a real redis-server and a real
worker host that loads the recipe's tasks module."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples import factor, jobs_runner, wordcount
from redpool import Pool
from tests.json_receiver import Receiver
from tests.procs import ROOT, Host, env
from tests.redis_server import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of the test's own: the recipes use fixed pipeline names."""
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.kill()


def recipe(
    module: str, server: RedisServer, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m examples.MODULE ARGS`` from the repository's root, as the README runs it."""
    return subprocess.run(
        [sys.executable, "-P", "-m", f"examples.{module}", *args],
        input=stdin,
        cwd=ROOT,
        env={**env(), "REDIS_URL": server.url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_logs(folder: Path) -> list[str]:
    """Plain and gzipped log files, one in a subfolder, words repeated across files."""
    lines = [f"GET /item/{i % 7} {200 if i % 5 else 500} user{i % 3}\n" for i in range(400)]
    (folder / "old").mkdir(parents=True)
    (folder / "app.log").write_text("".join(lines[:150]))
    (folder / "empty.log").write_text("")
    with gzip.open(folder / "app.log.1.gz", "wt") as f:
        f.write("".join(lines[150:300]) + "ERROR disk full\n")
    with gzip.open(folder / "old" / "app.log.2.gz", "wt") as f:
        f.write("".join(lines[300:]))
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def test_word_count_over_a_folder_equals_a_single_process_count(
    server: RedisServer, tmp_path: Path
) -> None:
    """One task per file, reduced in the caller with imap_unordered: the same counts as one
    process reading every file itself."""
    files = write_logs(tmp_path / "logs")
    expected: Counter[str] = Counter()
    for path in files:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            expected.update(f.read().split())
    Host(server.url, "words", log=tmp_path / "w.log", tasks="examples.wordcount")
    with Pool(server.url, "words") as pool:
        assert wordcount.word_count(pool, files) == expected
    shown = recipe("wordcount", server, str(tmp_path / "logs"), "2")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [f"{n}\t{w}" for w, n in expected.most_common(2)]


def test_the_job_runner_gets_every_result_and_bounds_the_jobs_in_flight(
    server: RedisServer, tmp_path: Path
) -> None:
    """Every job's digest comes back, the done callback fired once per job, and no more than
    max_pending jobs were ever unfinished. Counted by the runner between submit and its
    callback, a job whose answer has freed its room but whose callback has not run yet is
    still counted: hence max_pending + 1 at most (without the bound: all 60)."""
    Host(server.url, "jobs", log=tmp_path / "w.log", tasks="examples.jobs_runner")
    done = recipe("jobs_runner", server, "60", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{j} {jobs_runner.digest(j, 20_000)}" for j in range(60)]
    progress = done.stderr.splitlines()
    assert sorted(progress[:-1]) == sorted(f"{k}/60 done" for k in range(1, 61))
    peak = int(progress[-1].split()[2])
    assert 1 <= peak <= 4 + 1, progress[-1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    srv = Receiver()
    yield srv
    srv.close()


def test_the_stream_consumer_posts_every_result_in_input_order(
    server: RedisServer, tmp_path: Path, receiver: Receiver
) -> None:
    Host(server.url, "stream", log=tmp_path / "w.log", tasks="examples.factor")
    numbers = list(range(2, 1502))
    done = recipe(
        "forward", server, "factorise", receiver.url, stdin="".join(f"{n}\n\n" for n in numbers)
    )
    assert done.returncode == 0, done.stderr
    assert receiver.bodies == [{"input": n, "value": factor.factorise(n)} for n in numbers]


def test_the_stream_consumer_stops_when_a_post_fails(server: RedisServer, tmp_path: Path) -> None:
    """A POST answered 500 ends the consumer with an error, not a result dropped in silence."""
    Host(server.url, "stream", log=tmp_path / "w.log", tasks="examples.factor")
    failing = Receiver(status=500)
    try:
        done = recipe("forward", server, "factorise", failing.url, stdin="91\n92\n")
    finally:
        failing.close()
    assert done.returncode == 1 and "HTTP Error 500" in done.stderr, done.stderr
    assert failing.bodies == [{"input": 91, "value": [7, 13]}]
