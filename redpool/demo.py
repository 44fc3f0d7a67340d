"""``redpool run``: producer, a worker pool and the sink on one machine, end to end.

The worker pool runs as ``python -m workers`` in a child process, the way it runs on a
host; the producer runs in a thread and the sink in the foreground.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import ExitStack

import click

from producer.run import produce_file
from redpool.connection import RedisSettings
from redpool.embedded import embedded_redis
from redpool.errors import ConfigError
from redpool.registry import Registry
from sink.outputs import JsonLines, open_output
from sink.sink import Sink


def run_all(
    settings: RedisSettings | None,
    pipeline: str,
    tasks_module: str,
    task_name: str,
    input_path: str,
    output: str,
    processes: int | None,
) -> None:
    registry = Registry.load(tasks_module)  # fail here, in one line, not in the pool
    if registry.get(task_name) is None:
        names = ", ".join(sorted(t.name for t in registry))
        raise ConfigError(f"no task {task_name!r} in {tasks_module!r} (it has: {names})")
    with ExitStack() as stack:
        if settings is None:
            settings = RedisSettings(stack.enter_context(embedded_redis()))
        started = time.perf_counter()
        pool = _start_pool(settings, pipeline, tasks_module, processes)
        stack.callback(_stop, pool)
        produced: dict[str, int] = {}
        feeder = threading.Thread(
            target=_feed, args=(settings, pipeline, task_name, input_path, produced), daemon=True
        )
        feeder.start()
        stream = open_output(output, append=False)
        if output != "-":
            stack.callback(stream.close)
        out = JsonLines(stream)
        sink = Sink(settings.url, pipeline, out, flush=out.flush, wait=settings.wait)
        threading.Thread(target=_watch, args=(pool, sink), daemon=True).start()
        summary = sink.run()
        feeder.join()
        if "error" in produced:
            raise ConfigError(f"producer failed: {produced['error']}")
        if pool.poll() not in (None, 0):
            raise ConfigError(f"worker pool exited with code {pool.returncode}")
        elapsed = time.perf_counter() - started
        click.echo(
            f"redpool: {summary.total} task(s) in {elapsed:.2f} s "
            f"({summary.total / elapsed:,.0f}/s): {summary.ok} ok, {summary.failed} failed",
            err=True,
        )
        if produced.get("bad"):
            raise ConfigError(f"{produced['bad']} bad input line(s) skipped")


def _start_pool(
    settings: RedisSettings, pipeline: str, tasks_module: str, processes: int | None
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "workers",
        "--redis",
        settings.url,
        "--pipeline",
        pipeline,
        "--tasks",
        tasks_module,
        "--exit-when-done",
    ]
    if processes:
        cmd += ["--processes", str(processes)]
    return subprocess.Popen(cmd)


def _feed(
    settings: RedisSettings, pipeline: str, task: str, path: str, produced: dict[str, int]
) -> None:
    try:
        produced["count"], produced["bad"] = produce_file(settings, pipeline, task, path, None)
    except Exception as exc:  # noqa: BLE001 - reported by the main thread
        produced["error"] = 1
        click.echo(f"redpool: error: {exc}", err=True)


def _watch(pool: subprocess.Popen[bytes], sink: Sink) -> None:
    """Stop the sink if the pool dies early, so the demo fails instead of hanging."""
    if pool.wait() != 0:
        sink.stopping = True


def _stop(pool: subprocess.Popen[bytes]) -> None:
    try:
        pool.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pool.terminate()
        pool.wait()
