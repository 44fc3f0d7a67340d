"""The ``redpool`` command: the one place that turns an error into a line and an exit code.

Subcommands import their role lazily, so ``redpool status`` does not pay for the worker.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import redis

from redpool.connection import DEFAULT_URL, RedisSettings, connect
from redpool.errors import ConfigError, RedpoolError
from redpool.keys import Keys, check_pipeline_name

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ERROR, EXIT_USAGE = 1, 2


def common(fn: F) -> F:
    """--redis, --pipeline, --wait-for-redis and -v on every subcommand."""
    options = [
        click.option(
            "--redis",
            "redis_url",
            envvar="REDIS_URL",
            default=DEFAULT_URL,
            show_default=True,
            help="Redis URL (default: $REDIS_URL, then localhost).",
        ),
        click.option(
            "--pipeline",
            default="default",
            show_default=True,
            callback=lambda _c, _p, v: _checked(v),
            help="Pipeline name.",
        ),
        click.option(
            "--wait-for-redis",
            "wait",
            type=click.FloatRange(min=0),
            default=10.0,
            show_default=True,
            help="Seconds to wait for Redis at start.",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Log progress, not only problems."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _checked(name: str) -> str:
    try:
        return check_pipeline_name(name)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _setup(redis_url: str, wait: float, verbose: bool) -> RedisSettings:
    logging.basicConfig(
        format="redpool: %(message)s", level=logging.INFO if verbose else logging.WARNING
    )
    return RedisSettings(redis_url, wait=wait)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="redpool")
def cli() -> None:
    """redpool: a pool of worker processes per host, fed through Redis lists."""


@cli.command()
@common
@click.option("--tasks", "tasks_module", required=True, help="Module (or .py file) with @task.")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes on this host [default: CPU count].",
)
@click.option("--exit-when-done", is_flag=True, help="Exit 0 once the stream is closed and empty.")
@click.option(
    "--lease",
    type=click.FloatRange(min=0.3),
    default=15.0,
    show_default=True,
    help="Seconds before other hosts presume this one dead.",
)
@click.option(
    "--task-timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Default seconds per task attempt (0: no limit).",
)
@click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=1),
    default=None,
    help="Replace a child after this many tasks (for leaky task code).",
)
def worker(
    redis_url: str,
    pipeline: str,
    wait: float,
    verbose: bool,
    tasks_module: str,
    processes: int | None,
    exit_when_done: bool,
    lease: float,
    task_timeout: float,
    max_tasks_per_child: int | None,
) -> None:
    """Run a pool of worker processes on this host."""
    import os

    from redpool.registry import Registry
    from workers.settings import WorkerSettings
    from workers.supervisor import run_workers

    settings = WorkerSettings(
        redis=_setup(redis_url, wait, verbose),
        pipeline=pipeline,
        processes=processes or os.cpu_count() or 1,
        exit_when_done=exit_when_done,
        lease=lease,
        task_timeout=task_timeout or None,
        max_tasks_per_child=max_tasks_per_child,
    )
    sys.exit(run_workers(settings, Registry.load(tasks_module)))


@cli.command()
@common
@click.option("--task", "task_name", required=True, help="Name of the task to run per line.")
@click.option(
    "--input", "input_path", default="-", show_default=True, help="JSON Lines file, or - for stdin."
)
@click.option(
    "--max-backlog",
    type=click.IntRange(min=1),
    default=None,
    help="Block while the tasks list is longer than this.",
)
def produce(
    redis_url: str,
    pipeline: str,
    wait: float,
    verbose: bool,
    task_name: str,
    input_path: str,
    max_backlog: int | None,
) -> None:
    """Submit one task per JSON line, then close the stream."""
    from producer.run import produce_file

    settings = _setup(redis_url, wait, verbose)
    count, bad = produce_file(settings, pipeline, task_name, input_path, max_backlog)
    click.echo(f"redpool: submitted {count} task(s) to pipeline {pipeline!r}", err=True)
    if bad:
        raise ConfigError(f"{bad} bad input line(s) skipped")


@cli.command()
@common
@click.option("--output", default="-", show_default=True, help="File to append to, or -.")
@click.option("--follow", is_flag=True, help="Keep draining an endless stream.")
def sink(
    redis_url: str, pipeline: str, wait: float, verbose: bool, output: str, follow: bool
) -> None:
    """Write one JSON line per result; exit once every submitted task has its result."""
    from sink.run import sink_to

    summary = sink_to(_setup(redis_url, wait, verbose), pipeline, output, follow)
    click.echo(
        f"redpool: {summary.total} result(s): {summary.ok} ok, {summary.failed} failed", err=True
    )


@cli.command()
@common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(redis_url: str, pipeline: str, wait: float, verbose: bool, as_json: bool) -> None:
    """Backlog, in flight, done, failed, dead, and the live workers."""
    from redpool.report import print_status

    client = connect(_setup(redis_url, wait, verbose))
    print_status(client, Keys(pipeline), as_json)


@cli.command()
@common
@click.option("--tasks", "tasks_module", required=True, help="Module (or .py file) with @task.")
@click.option("--task", "task_name", required=True, help="Task to run once per input line.")
@click.option("--input", "input_path", required=True, help="JSON Lines file, or - for stdin.")
@click.option("--output", default="-", show_default=True, help="File to append to, or -.")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes [default: CPU count].",
)
def run(
    redis_url: str,
    pipeline: str,
    wait: float,
    verbose: bool,
    tasks_module: str,
    task_name: str,
    input_path: str,
    output: str,
    processes: int | None,
) -> None:
    """Producer, worker pool and sink on this machine; a private Redis unless --redis."""
    from redpool.demo import run_all

    # Only an explicit --redis: a REDIS_URL in the environment must not send the demo's
    # writes to a shared Redis.
    source = click.get_current_context().get_parameter_source("redis_url")
    own_redis = source is not click.core.ParameterSource.COMMANDLINE
    settings = _setup(redis_url, wait, verbose)
    run_all(
        settings if not own_redis else None,
        pipeline,
        tasks_module,
        task_name,
        input_path,
        output,
        processes,
    )


@cli.group()
def dead() -> None:
    """Inspect, retry or purge dead letters."""


@dead.command("list")
@common
@click.option(
    "--limit", type=click.IntRange(min=0), default=20, show_default=True, help="How many (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the dead letters as JSON lines.")
def dead_list(
    redis_url: str, pipeline: str, wait: float, verbose: bool, limit: int, as_json: bool
) -> None:
    """Show dead letters and why each failed."""
    from redpool.report import print_dead

    client = connect(_setup(redis_url, wait, verbose))
    print_dead(client, Keys(pipeline), limit, as_json)


@dead.command("retry")
@common
def dead_retry(redis_url: str, pipeline: str, wait: float, verbose: bool) -> None:
    """Send every dead task back for another run."""
    from redpool.deadletters import retry_dead

    report = retry_dead(connect(_setup(redis_url, wait, verbose)), Keys(pipeline))
    click.echo(f"redpool: {report.retried} task(s) sent back; {report.kept} unrunnable kept")


@dead.command("purge")
@common
def dead_purge(redis_url: str, pipeline: str, wait: float, verbose: bool) -> None:
    """Drop every dead letter."""
    from redpool.deadletters import purge_dead

    count = purge_dead(connect(_setup(redis_url, wait, verbose)), Keys(pipeline))
    click.echo(f"redpool: {count} dead letter(s) dropped")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line on stderr and an exit code for every failure."""
    try:
        cli.main(args=argv, prog_name="redpool", standalone_mode=False)
    except click.UsageError as exc:
        _fail(exc.format_message(), EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except RedpoolError as exc:
        _fail(str(exc), EXIT_ERROR)
    except redis.RedisError as exc:  # e.g. OOM or a command a locked-down Redis refuses
        _fail(f"Redis: {exc}", EXIT_ERROR)
    except click.ClickException as exc:
        _fail(exc.format_message(), EXIT_ERROR)


def _fail(message: str, code: int) -> None:
    click.echo(f"redpool: error: {message}", err=True)
    sys.exit(code)
