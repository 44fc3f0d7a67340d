"""``redpool run``: producer, a worker pool and the sink on one machine, end to end.

The worker host runs in a forked process, as `redpool worker` runs it on a host; the producer
runs in a thread and the sink in the foreground.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from contextlib import ExitStack
from multiprocessing.process import BaseProcess

import click

from redpool.embedded import embedded_redis
from redpool.errors import ConfigError, RedpoolError, RunIncomplete
from redpool.pipeline import Pipeline
from redpool.producer import ProducerSettings
from redpool.producer.run import produce_file
from redpool.progress import progress
from redpool.registry import Registry
from redpool.settings import RedisSettings
from redpool.sink import Sink
from redpool.sink.outputs import JsonLines, JsonLinesFile, close_output, open_output
from redpool.workers.settings import WorkerSettings
from redpool.workers.supervisor import run_workers


def run_all(
    redis: RedisSettings | None,
    pipeline: str,
    tasks_module: str,
    task_name: str,
    input_path: str,
    output: str,
    settings: WorkerSettings,
    producing: ProducerSettings,
    quiet: bool = True,
) -> None:
    _refuse_same_file(input_path, output)
    registry = Registry.load(tasks_module)  # fail here, in one line, not in the pool
    if registry.get(task_name) is None:
        names = ", ".join(sorted(t.name for t in registry))
        raise ConfigError(f"no task {task_name!r} in {tasks_module!r} (it has: {names})")
    with ExitStack() as stack:
        if redis is None:
            redis = RedisSettings(stack.enter_context(embedded_redis()))
        # A wrong password, or --shards against a pipeline that has another number, is one
        # line here, before the pool forks; and the pipeline's shards are recorded before any
        # role opens it.
        Pipeline.connect(redis, pipeline, shards=producing.shards).disconnect()
        stream = open_output(output, append=False)
        if output != "-":
            stack.callback(close_output, stream)
        started = time.perf_counter()
        pool = _start_pool(redis, pipeline, settings, registry)
        stack.callback(_stop, pool)
        produced: dict[str, int] = {}
        feeder = threading.Thread(
            target=_feed,
            args=(redis, pipeline, task_name, input_path, producing, produced),
            daemon=True,
        )
        feeder.start()
        out = JsonLines(stream) if output == "-" else JsonLinesFile(stream, output)
        sink = Sink(redis, pipeline, out, flush=out.flush)
        threading.Thread(target=_watch, args=(pool, sink), daemon=True).start()
        with progress(redis, pipeline, "drained", quiet):
            summary = sink.run()
        feeder.join()
        if "error" in produced:
            raise ConfigError(f"producer failed: {produced['error']}")
        if pool.exitcode not in (None, 0):
            raise ConfigError(f"worker pool exited with code {pool.exitcode}")
        if not summary.complete:
            raise RunIncomplete(f"the run did not complete: {summary.outcome}")
        elapsed = time.perf_counter() - started
        click.echo(
            f"redpool: {summary.total} task(s) in {elapsed:.2f} s "
            f"({summary.total / elapsed:,.0f}/s): {summary.ok} ok, {summary.failed} failed",
            err=True,
        )
        if produced.get("bad"):
            raise ConfigError(f"{produced['bad']} bad input line(s) skipped")


def _refuse_same_file(input_path: str, output: str) -> None:
    """``run`` starts its output anew: the input itself as the output would be emptied before
    a line of it was read. Refused before anything is touched."""
    if "-" in (input_path, output):
        return
    try:
        same = os.path.samefile(input_path, output)
    except OSError:  # one of them does not exist (yet): they cannot be one file
        return
    if same:
        raise ConfigError(
            f"--output {output!r} is the input file: run writes its output anew, which would "
            "empty the input; write the results to another file"
        )


def _start_pool(
    redis: RedisSettings, pipeline: str, settings: WorkerSettings, registry: Registry
) -> BaseProcess:
    """The worker host, forked before any thread starts: it shares no connection and imports
    nothing anew, so nothing in the current directory can stand in for redpool's modules."""
    pool = multiprocessing.get_context("fork").Process(
        target=_serve, args=(redis, pipeline, settings, registry), name="redpool-worker"
    )
    pool.start()
    return pool


def _serve(
    redis: RedisSettings, pipeline: str, settings: WorkerSettings, registry: Registry
) -> None:
    try:
        sys.exit(run_workers(redis, pipeline, settings, registry))
    except RedpoolError as exc:  # one line, as the CLI would print it, not a trace
        click.echo(f"redpool: error: {exc}", err=True)
        sys.exit(1)


def _feed(
    redis: RedisSettings,
    pipeline: str,
    task: str,
    path: str,
    settings: ProducerSettings,
    produced: dict[str, int],
) -> None:
    try:
        produced["count"], produced["bad"] = produce_file(redis, pipeline, task, path, settings)
    except RedpoolError as exc:  # reported by the main thread
        produced["error"] = 1
        click.echo(f"redpool: error: {exc}", err=True)


def _watch(pool: BaseProcess, sink: Sink) -> None:
    """Stop the sink if the pool dies early, so the demo fails instead of hanging."""
    pool.join()
    if pool.exitcode != 0:
        sink.stopping = True


def _stop(pool: BaseProcess) -> None:
    pool.join(timeout=30)
    if pool.exitcode is None:
        pool.terminate()
        pool.join()
