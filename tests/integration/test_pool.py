"""`redpool.Pool` and `redpool.Executor` against a real redis-server and a real worker host:
a script written for multiprocessing.Pool runs with its constructor changed, and gets the
same results; two callers get exactly their own; errors come back as exceptions."""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redpool import Executor, Pool, TaskFailed
from tests import jobs
from tests.procs import Host
from tests.redis_server import RedisServer


@pytest.fixture
def host(redis_server: RedisServer, pipeline: str, tmp_path: Path) -> Iterator[Host]:
    worker = Host(redis_server.url, pipeline, log=tmp_path / "w.log")
    yield worker
    worker.kill_host()


def script(pool: Any) -> dict[str, Any]:
    """What a multiprocessing.Pool user writes: map, imap, imap_unordered, starmap, apply,
    apply_async with callbacks."""
    got: dict[str, Any] = {}
    called: list[Any] = []
    done = threading.Event()
    got["map"] = pool.map(jobs.echo, range(200), 7)
    got["imap"] = list(pool.imap(jobs.echo, range(50)))
    got["unordered"] = sorted(pool.imap_unordered(jobs.echo, range(50)))
    got["starmap"] = pool.starmap(jobs.add, [(1, 2), (3, 4)])
    got["apply"] = pool.apply(jobs.add, (20, 22))

    def note(value: Any) -> None:
        called.append(value)
        done.set()

    pending = pool.apply_async(jobs.add, (1, 1), callback=note)
    got["async"] = pending.get(timeout=30)
    done.wait(30)
    got["callback"] = called
    return got


def test_a_multiprocessing_pool_script_runs_with_its_constructor_changed(
    redis_server: RedisServer, pipeline: str, host: Host
) -> None:
    with multiprocessing.Pool(2) as local:
        expected = script(local)
    with Pool(redis_server.url, pipeline) as remote:
        assert script(remote) == expected


def test_a_task_error_is_raised_in_the_caller_with_the_remote_traceback(
    redis_server: RedisServer, pipeline: str, host: Host
) -> None:
    with Pool(redis_server.url, pipeline) as pool:
        with pytest.raises(TaskFailed) as raised:
            pool.apply(jobs.boom, (3,))
        assert type(raised.value).__name__ == "ValueError" and "boom 3" in str(raised.value)
        assert "Traceback" in raised.value.remote_traceback
        errors: list[BaseException] = []
        result = pool.apply_async(jobs.boom, (4,), error_callback=errors.append)
        result.wait(30)
        assert result.ready() and not result.successful()


def test_two_callers_each_get_exactly_their_own_answers(
    redis_server: RedisServer, pipeline: str, host: Host
) -> None:
    out: dict[int, list[Any]] = {}

    def call(k: int) -> None:
        with Pool(redis_server.url, pipeline) as pool:
            out[k] = pool.map(jobs.echo, [f"{k}-{i}" for i in range(300)], 10)

    threads = [threading.Thread(target=call, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out == {k: [f"{k}-{i}" for i in range(300)] for k in (1, 2)}


def test_the_executor_gives_futures_and_bounds_what_is_in_flight(
    redis_server: RedisServer, pipeline: str, host: Host
) -> None:
    with Executor(redis_server.url, pipeline, max_pending=5) as executor:
        futures = [executor.submit(jobs.add, i, b=1) for i in range(40)]
        done = [f.result(timeout=30) for f in concurrent.futures.as_completed(futures)]
        assert sorted(done) == [i + 1 for i in range(40)]
        assert list(executor.map(jobs.echo, range(10), timeout=30)) == list(range(10))
        failing = executor.submit(jobs.boom, 1)
        assert isinstance(failing.exception(timeout=30), TaskFailed)


def test_imap_answers_while_its_input_is_still_open(
    redis_server: RedisServer, pipeline: str, host: Host
) -> None:
    """A stream consumer's input trickles: each answer comes as soon as it is in, not when
    the input ends (the input is read by a thread of the pool's own)."""
    feed: queue.Queue[object] = queue.Queue()
    end = object()

    def items() -> Iterator[object]:
        while (item := feed.get()) is not end:
            yield item

    with Pool(redis_server.url, pipeline) as pool:
        answers = pool.imap(jobs.echo, items())
        got: list[object] = []
        reader = threading.Thread(target=lambda: got.extend(itertools.islice(answers, 2)))
        reader.start()
        feed.put("first")
        feed.put("second")
        reader.join(30)
        assert got == ["first", "second"], "answers waited for the end of the input"
        feed.put(end)
        assert list(answers) == []


def test_cancel_takes_back_a_task_no_worker_took(
    redis_server: RedisServer, pipeline: str, tmp_path: Path
) -> None:
    """No worker host yet: a cancelled future's task leaves the queue; the other stays and
    runs once a host comes; shutdown(cancel_futures=True) takes back the rest."""
    client = redis_server.client()
    tasks = f"redpool:{{{pipeline}}}:tasks"
    executor = Executor(redis_server.url, pipeline)
    kept, cancelled = executor.submit(jobs.echo, 1), executor.submit(jobs.echo, 2)
    assert cancelled.cancel() and cancelled.cancelled()
    assert client.llen(tasks) == 1
    late = [executor.submit(jobs.echo, i) for i in range(3)]
    host = Host(redis_server.url, pipeline, log=tmp_path / "w.log", processes=1)
    try:
        assert kept.result(timeout=30) == 1
        executor.shutdown(wait=True, cancel_futures=True)
        assert all(f.done() for f in late)
    finally:
        host.kill_host()
