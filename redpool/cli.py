"""The ``redpool`` command: the one place that turns an error into a line and an exit code.

Every option default comes from the settings class that owns it; the code of a role is
imported when its subcommand runs.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import click

from redpool import logs
from redpool.connection import safe_url
from redpool.deadletters import Selection
from redpool.errors import ConfigError, RedpoolError, RunIncomplete, SettingError
from redpool.keys import COMPLETE, DEFAULT_PIPELINE, MAX_SHARDS, check_pipeline_name
from redpool.pipeline import Pipeline
from redpool.producer import ProducerSettings
from redpool.producer.producer import Chunksize
from redpool.progress import progress
from redpool.settings import DEFAULT_URL, RedisSettings
from redpool.sink import SinkSettings
from redpool.sink.post import PostSettings
from redpool.sink.sink import NO_RUN, STOPPED, Summary
from redpool.state import OPEN
from redpool.workers.settings import WorkerSettings

P = ParamSpec("P")
R = TypeVar("R")
EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE = 1, 2, 3


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@dataclass(frozen=True)
class Common:
    """The options every subcommand takes, folded into one object."""

    redis: RedisSettings
    pipeline: str
    verbose: bool
    redis_given: bool
    """--redis was on the command line (not from $REDIS_URL or the default)."""
    pipeline_given: bool
    """--pipeline was on the command line (not the default)."""


def common(fn: Callable[..., R]) -> Callable[..., R]:
    """--redis, --pipeline, --wait-for-redis, -v and --log-json, handed to the command as one
    `Common`."""

    @functools.wraps(fn)
    def wrapper(
        *, redis_url: str, pipeline: str, wait: float, verbose: bool, log_json: bool, **rest: Any
    ) -> R:
        context = click.get_current_context()
        given = {
            name
            for name in ("redis_url", "pipeline")
            if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        }
        options = Common(
            redis=RedisSettings(redis_url, wait=wait),
            pipeline=pipeline,
            verbose=verbose,
            redis_given="redis_url" in given,
            pipeline_given="pipeline" in given,
        )
        logs.configure(verbose, log_json)
        try:
            return fn(options, **rest)
        except BrokenPipeError:  # here, before click makes it exit code 1
            _reader_gone()
            raise

    decorated: Callable[..., R] = wrapper
    for option in reversed(
        [
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
                default=DEFAULT_PIPELINE,
                show_default=True,
                callback=lambda _c, _p, v: _checked(v),
                help="Pipeline name.",
            ),
            click.option(
                "--wait-for-redis",
                "wait",
                type=click.FloatRange(min=0),
                default=RedisSettings.wait,
                show_default=True,
                help="Seconds to wait for Redis at start.",
            ),
            click.option("-v", "--verbose", is_flag=True, help="Log progress, not only problems."),
            click.option("--log-json", is_flag=True, help="Log one JSON object per line."),
        ]
    ):
        decorated = option(decorated)
    return decorated


def _checked(name: str) -> str:
    try:
        return check_pipeline_name(name)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _quiet_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "-q", "--quiet", is_flag=True, help="No live progress line (none is drawn off a terminal)."
    )(fn)


def _to_terminal(output: str) -> bool:
    """Results go to the terminal the progress line would be drawn on."""
    return output == "-" and sys.stdout.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="redpool")
def cli() -> None:
    """redpool: a pool of worker processes per host, fed through Redis lists."""


def _worker_options(fn: Callable[P, R]) -> Callable[P, R]:
    """What `worker` and `run` share: the tasks module and the number of processes."""
    fn = click.option(
        "--processes",
        type=int,
        default=None,
        help="Worker processes on this host [default: CPU count].",
    )(fn)
    return click.option(
        "--tasks", "tasks_module", required=True, help="Module (or .py file) with @task."
    )(fn)


def _chunk(_ctx: click.Context, _param: click.Parameter, value: str) -> Chunksize:
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'auto'") from None


def _between_runs_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--exit-between-runs",
        is_flag=True,
        help="Started when no run is in progress: exit 0 at once instead of waiting for one.",
    )(fn)


def _shards_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--shards",
        type=click.IntRange(1, MAX_SHARDS),
        default=None,
        help="Shards of a new pipeline, each in a slot of its own (spread over a Redis "
        "Cluster's masters); fixed once the pipeline exists. Default: as it is (1 if new).",
    )(fn)


def _chunksize_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--chunksize",
        default=str(ProducerSettings.chunksize),
        show_default=True,
        callback=_chunk,
        help="Tasks per element of the queue, or auto: about 50 ms of work each.",
    )(fn)


@cli.command()
@common
@_worker_options
@click.option(
    "--exit-when-done", is_flag=True, help="Exit 0 once the run's stream is closed and empty."
)
@_between_runs_option
@click.option(
    "--max-results",
    type=click.IntRange(min=0),
    default=WorkerSettings.max_results,
    show_default=True,
    help="Take no new tasks while more results than this wait for the sink (0: no bound).",
)
@click.option(
    "--lease",
    type=float,
    default=WorkerSettings.lease,
    show_default=True,
    help="Seconds before other hosts presume this one dead.",
)
@click.option(
    "--task-timeout",
    type=float,
    default=WorkerSettings.task_timeout,
    show_default=True,
    help="Default seconds per task attempt (0: no limit).",
)
@click.option(
    "--max-tasks-per-child",
    type=int,
    default=WorkerSettings.max_tasks_per_child,
    help="Replace a child after this many tasks (for leaky task code).",
)
@click.option(
    "--unknown-wait",
    type=click.FloatRange(min=0),
    default=WorkerSettings.unknown_wait,
    show_default=True,
    help="Seconds a task this host lacks goes back for another host before it is dead (0: dead"
    " at once).",
)
@click.option(
    "--no-tracebacks",
    is_flag=True,
    help="Error results carry the error's type and message only, no traceback (file paths).",
)
@_shards_option
def worker(
    options: Common,
    tasks_module: str,
    processes: int | None,
    exit_when_done: bool,
    exit_between_runs: bool,
    max_results: int,
    lease: float,
    task_timeout: float,
    max_tasks_per_child: int | None,
    unknown_wait: float,
    no_tracebacks: bool,
    shards: int | None,
) -> None:
    """Run a pool of worker processes on this host."""
    from redpool.registry import Registry
    from redpool.workers.supervisor import run_workers

    settings = _worker_settings(
        processes,
        exit_when_done=exit_when_done,
        wait_for_run=not exit_between_runs,
        max_results=max_results or None,
        lease=lease,
        task_timeout=task_timeout or None,
        max_tasks_per_child=max_tasks_per_child,
        unknown_wait=unknown_wait,
        tracebacks=not no_tracebacks,
        shards=shards,
    )
    registry = Registry.load(tasks_module)
    sys.exit(run_workers(options.redis, options.pipeline, settings, registry))


def _worker_settings(processes: int | None, **options: Any) -> WorkerSettings:
    """--processes is optional: without it, the settings' own default (the CPU count)."""
    if processes is not None:
        options["processes"] = processes
    return WorkerSettings(**options)


@cli.command()
@common
@click.option("--task", "task_name", required=True, help="Name of the task to run per line.")
@click.option(
    "--input", "input_path", default="-", show_default=True, help="JSON Lines file, or - for stdin."
)
@click.option(
    "--max-backlog",
    type=int,
    default=ProducerSettings.max_backlog,
    help="Block while the queue holds more tasks than this.",
)
@_chunksize_option
@click.option(
    "--linger",
    type=float,
    default=ProducerSettings.linger,
    show_default=True,
    help="Seconds a partial batch waits for more lines before it goes out.",
)
@click.option(
    "--lease",
    type=float,
    default=ProducerSettings.lease,
    show_default=True,
    help="Seconds after which a silent producer is presumed dead (its part of the run ends).",
)
@_shards_option
@_quiet_option
def produce(
    options: Common,
    task_name: str,
    input_path: str,
    max_backlog: int | None,
    chunksize: Chunksize,
    linger: float,
    lease: float,
    shards: int | None,
    quiet: bool,
) -> None:
    """Submit one task per JSON line, then close the stream (on an error, Ctrl-C or SIGTERM:
    abort it; what was submitted still runs)."""
    from redpool.producer.run import produce_file

    settings = ProducerSettings(
        max_backlog=max_backlog, chunksize=chunksize, linger=linger, lease=lease, shards=shards
    )
    signal.signal(signal.SIGTERM, _interrupt)  # a stop, like Ctrl-C: the producer aborts
    with progress(options.redis, options.pipeline, "submitted", quiet):
        count, bad = produce_file(options.redis, options.pipeline, task_name, input_path, settings)
    click.echo(f"redpool: submitted {count} task(s) to pipeline {options.pipeline!r}", err=True)
    if bad:
        raise ConfigError(f"{bad} bad input line(s) skipped")


@cli.command()
@common
@click.option("--output", default="-", show_default=True, help="File to append to, or -.")
@click.option("--post", "post_url", metavar="URL", help="POST each result to this URL instead.")
@click.option(
    "--concurrency",
    type=int,
    default=PostSettings.concurrency,
    show_default=True,
    help="With --post: POSTs in flight at once.",
)
@click.option(
    "--post-timeout",
    type=float,
    default=PostSettings.timeout,
    show_default=True,
    help="With --post: seconds to connect, and to wait for an answer, per try.",
)
@click.option("--follow", is_flag=True, help="Keep draining, run after run.")
@_between_runs_option
@click.option("--fsync", is_flag=True, help="fsync the output file before each acknowledgement.")
@_quiet_option
@_shards_option
def sink(
    options: Common,
    output: str,
    post_url: str | None,
    concurrency: int,
    post_timeout: float,
    follow: bool,
    exit_between_runs: bool,
    fsync: bool,
    quiet: bool,
    shards: int | None,
) -> None:
    """Write one JSON line per result (or POST it, with --post); exit once the run is done
    (exit 3 when it ended incomplete or the sink was stopped first). With --follow, run after
    run until a signal (then exit 0)."""
    from redpool.sink.run import post_to, sink_to

    settings = SinkSettings(wait_for_run=not exit_between_runs, shards=shards)
    post = _post_settings(post_url, concurrency, post_timeout, fsync)
    drawn = quiet or (post is None and _to_terminal(output))
    with progress(options.redis, options.pipeline, "drained", drawn):
        if post is not None:
            summary = post_to(options.redis, options.pipeline, post, follow, settings)
        else:
            summary = sink_to(options.redis, options.pipeline, output, follow, settings, fsync)
    click.echo(f"redpool: {describe(summary, follow)}", err=True)
    if summary.outcome not in (COMPLETE, NO_RUN) and not (follow and summary.outcome == STOPPED):
        sys.exit(EXIT_INCOMPLETE)


def _post_settings(
    url: str | None, concurrency: int, timeout: float, fsync: bool
) -> PostSettings | None:
    """--post and the options that go with it (or must not), as settings."""
    given = click.get_current_context().get_parameter_source
    if url is None:
        for name in ("concurrency", "post_timeout"):
            if given(name) is click.core.ParameterSource.COMMANDLINE:
                raise click.UsageError(f"--{name.replace('_', '-')} goes with --post")
        return None
    if given("output") is click.core.ParameterSource.COMMANDLINE or fsync:
        raise click.UsageError("--post sends results to a URL: --output and --fsync do not apply")
    return PostSettings(url, concurrency=concurrency, timeout=timeout)


def describe(summary: Summary, follow: bool = False) -> str:
    """A sink's summary in one line, never mistakable for a complete run's."""
    counts = f"{summary.total} result(s): {summary.ok} ok, {summary.failed} failed"
    if follow and summary.outcome == STOPPED:  # the way a following sink ends
        return f"stopped following: {counts}"
    if summary.outcome == NO_RUN:
        return "no run in progress; nothing to drain"
    run = f"run {summary.run}" if summary.run is not None else "the run"
    if summary.outcome == COMPLETE:
        return f"{run} complete: {counts}"
    if summary.outcome == STOPPED:
        return f"stopped before {run} was done: {counts} so far"
    why = "; ".join(
        f"producer {p.id} {p.state}{': ' + p.reason if p.reason else ''}" for p in summary.short
    )
    return f"{run} INCOMPLETE ({why or 'a producer did not close'}): {counts}"


@cli.command()
@common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--watch",
    "interval",
    type=click.FloatRange(min=0.1),
    is_flag=False,
    flag_value=1.0,
    default=None,
    help="Redraw in place every N seconds (default 1), with rates, until Ctrl-C.",
)
def status(options: Common, as_json: bool, interval: float | None) -> None:
    """Every pipeline in one line each; with --pipeline, that one's run, producers, backlog,
    in flight, done, failed, dead, and its live workers."""
    from redpool.catalog import Catalog
    from redpool.report import print_pipelines, print_status, watch_pipelines, watch_status

    if interval is not None and as_json:
        raise click.UsageError("--watch draws for a person; --json is for programs: pick one")
    catalog = Catalog.connect(options.redis)
    if options.pipeline_given:
        pipe = catalog.find(options.pipeline)
        if interval is not None:
            watch_status(pipe, interval)
        else:
            print_status(pipe, as_json)
    elif interval is not None:
        watch_pipelines(catalog, interval)
    else:
        print_pipelines(catalog.survey(), as_json)


@cli.command()
@common
@_worker_options
@click.option("--task", "task_name", required=True, help="Task to run once per input line.")
@click.option("--input", "input_path", required=True, help="JSON Lines file, or - for stdin.")
@click.option("--output", default="-", show_default=True, help="File to write, or -.")
@_chunksize_option
@_shards_option
@_quiet_option
def run(
    options: Common,
    tasks_module: str,
    processes: int | None,
    task_name: str,
    input_path: str,
    output: str,
    chunksize: Chunksize,
    shards: int | None,
    quiet: bool,
) -> None:
    """Producer, worker pool and sink on this machine; a private Redis unless --redis."""
    from redpool.demo import run_all

    # Only an explicit --redis: a REDIS_URL in the environment must not send the demo's
    # writes to a shared Redis.
    run_all(
        options.redis if options.redis_given else None,
        options.pipeline,
        tasks_module,
        task_name,
        input_path,
        output,
        # its pool is the only one: no other host will have a task name its module lacks
        _worker_settings(processes, exit_when_done=True, unknown_wait=0, shards=shards),
        ProducerSettings(chunksize=chunksize, shards=shards),
        quiet or _to_terminal(output),
    )


@cli.command()
@common
@click.option(
    "--producer", "producers", multiple=True, help="Close only this producer (repeatable)."
)
def close(options: Common, producers: tuple[str, ...]) -> None:
    """Close the stream by hand: every open producer of the current run (or those named) is
    marked closed, as if it had finished; their submitted tasks still run. For a producer
    that will never come back, when waiting out its lease is not wanted."""
    from redpool.catalog import Catalog

    pipe = Catalog.connect(options.redis).find(options.pipeline)
    open_now = [p.id for p in pipe.snapshot().producers_in(OPEN)]
    unknown = sorted(set(producers) - set(open_now))
    if unknown:
        there = ", ".join(open_now) or "none"
        raise ConfigError(f"no open producer {', '.join(unknown)} (open ones: {there})")
    closed = [p for p in (producers or open_now) if pipe.close(p)]
    if not closed:
        click.echo(f"redpool: no open producer in pipeline {options.pipeline!r}", err=True)
    for p in closed:
        click.echo(f"redpool: closed producer {p}", err=True)


@cli.command()
@common
@click.option("--force", is_flag=True, help="Even with live workers or a run going on.")
def purge(options: Common, force: bool) -> None:
    """Delete every key of the pipeline: queue, results, dead letters, runs, counters."""
    from redpool.catalog import Catalog

    pipe = Catalog.connect(options.redis).find(options.pipeline)
    state = pipe.snapshot()
    busy = []
    if state.workers:
        busy.append(f"{len(state.workers)} live worker host(s)")
    if state.run is not None and not state.run.over:  # tasks to run or results to drain
        busy.append(f"run {state.run.id} not yet over")
    if busy and not force:
        raise ConfigError(
            f"pipeline {options.pipeline!r} has {' and '.join(busy)}: stop them first, or "
            "purge --force"
        )
    gone = pipe.purge()
    click.echo(f"redpool: pipeline {options.pipeline!r}: {gone} key(s) deleted", err=True)


@cli.group()
def dead() -> None:
    """Inspect, retry or purge dead letters."""


@dead.command("list")
@common
@click.option(
    "--limit", type=click.IntRange(min=0), default=20, show_default=True, help="How many (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the dead letters as JSON lines.")
def dead_list(options: Common, limit: int, as_json: bool) -> None:
    """Show dead letters and why each failed."""
    from redpool.report import print_dead

    print_dead(_pipeline(options, writes=False), limit, as_json)


def _selection(f: Callable[..., Any]) -> Callable[..., Any]:
    """--id, --task, --reason: which dead letters a command takes (every one by default)."""
    f = click.option(
        "--reason", default=None, help="Only letters whose reason or error contains this text."
    )(f)
    f = click.option("--task", "task_name", default=None, help="Only letters of this task.")(f)
    return click.option(
        "--id", "ids", multiple=True, help="Only the letter of this task id (repeatable)."
    )(f)


def _chosen(ids: tuple[str, ...], task_name: str | None, reason: str | None) -> Selection:
    return Selection(frozenset(ids), task_name, reason)


@dead.command("retry")
@common
@_selection
def dead_retry(
    options: Common, ids: tuple[str, ...], task_name: str | None, reason: str | None
) -> None:
    """Send the chosen dead tasks (all by default) back as re-runs: each result line of a
    re-run says "rerun": K, so it is told from the first one."""
    report = _pipeline(options).retry_dead(_chosen(ids, task_name, reason))
    click.echo(f"redpool: {report.retried} task(s) sent back; {report.kept} unrunnable kept")


@dead.command("purge")
@common
@_selection
def dead_purge(
    options: Common, ids: tuple[str, ...], task_name: str | None, reason: str | None
) -> None:
    """Drop the chosen dead letters (all by default)."""
    count = _pipeline(options).purge_dead(_chosen(ids, task_name, reason))
    click.echo(f"redpool: {count} dead letter(s) dropped")


def _pipeline(options: Common, writes: bool = True) -> Pipeline:
    return Pipeline.connect(options.redis, options.pipeline, writes=writes)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line on stderr and an exit code for every failure."""
    hide_secrets_from_ps()
    try:
        cli.main(args=argv, prog_name="redpool", standalone_mode=False)
    except BrokenPipeError:
        _reader_gone()
    except click.UsageError as exc:
        _fail(exc.format_message(), EXIT_USAGE)
    except SettingError as exc:
        _fail(f"invalid value for --{exc.setting.replace('_', '-')}: {exc.problem}", EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except RunIncomplete as exc:
        _fail(str(exc), EXIT_INCOMPLETE)
    except RedpoolError as exc:
        _fail(str(exc), EXIT_ERROR)
    except click.ClickException as exc:
        _fail(exc.format_message(), EXIT_ERROR)


def hide_secrets_from_ps() -> None:
    """A password in ``--redis`` (or ``--redis=...``) would show in ``ps`` for this process and
    for every child forked from it (they share its title): rewrite the title with each URL's
    secrets masked, before anything forks."""
    masked = [_masked(arg) for arg in sys.argv]
    if masked == sys.argv:
        return
    import setproctitle

    setproctitle.setproctitle(" ".join(masked))


def _masked(arg: str) -> str:
    option, eq, value = arg.partition("=")
    if eq and option.startswith("--"):
        return f"{option}={safe_url(value)}"
    return safe_url(arg) if "://" in arg or "@" in arg else arg


def _reader_gone() -> None:
    """stdout's reader went away (``redpool status | head -2``): what it wanted it has; exit 0
    quietly. stdout now points at /dev/null, so Python's final flush finds no pipe to break."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _fail(message: str, code: int) -> None:
    click.echo(f"redpool: error: {message}", err=True)
    sys.exit(code)
