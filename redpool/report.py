"""What ``redpool status`` and ``redpool dead list`` print."""

from __future__ import annotations

import time
from typing import Any

import click
import orjson

from redpool import codec
from redpool.catalog import Catalog, Survey
from redpool.pipeline import Pipeline
from redpool.state import OPEN, ProducerInfo, Snapshot

_ESTIMATED = {"backlog", "in_flight", "results_waiting"}


def print_status(pipe: Pipeline, as_json: bool) -> None:
    state = pipe.snapshot(count_tasks=True, every_holder=True)
    callers = pipe.callers()
    if as_json:
        data = state.as_dict()
        data["callers"] = [
            {"id": c, "lease_left": round(left, 1), "answers_waiting": waiting}
            for c, (left, waiting) in callers.items()
        ]
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(status_text(pipe.name, state))
    click.echo(f"callers (redpool.Pool, redpool.Executor): {len(callers)}")
    for caller, (left, waiting) in callers.items():
        lease = f"lease {left:.1f} s left" if left >= 0 else f"gone {-left:.1f} s ago"
        click.echo(f"  {caller:<30} {waiting:,} answer element(s) waiting, {lease}")


def watch_status(pipe: Pipeline, interval: float) -> None:
    """``status --watch``: the status redrawn in place, with the pipeline's rate and each
    host's (from the answers count in its heartbeats)."""
    from redpool.progress import Rate, watch

    overall = Rate()
    hosts: dict[str, Rate] = {}

    def render() -> str:
        state = pipe.snapshot()  # no list read at every refresh: lists in elements
        now = time.time()
        done = state.stats.get("ok", 0) + state.stats.get("failed", 0)
        rates = {
            w.id: hosts.setdefault(w.id, Rate()).see(w.done, round(now - w.heartbeat_age, 1))
            for w in state.workers
        }
        return status_text(pipe.name, state, overall.see(done, now), rates, counted=False)

    watch(render, interval)


def status_text(
    name: str,
    state: Snapshot,
    rate: float | None = None,
    host_rates: dict[str, float | None] | None = None,
    counted: bool = True,
) -> str:
    """What ``status`` prints for one pipeline; with rates (tasks/s) when watching. Not
    ``counted``: the lists' tasks were not counted, so backlog, in flight and results waiting
    are list elements (a chunk is one)."""
    d = state.as_dict()
    sharded = f" ({state.shards} shards)" if state.shards > 1 else ""
    lines = [f"pipeline {name!r}{sharded}: {_run_line(state)}"]
    lines += [f"  producer {p.id:<28} {_producer_line(p)}" for p in state.producers]
    if state.last_run:
        lines.append(f"last run: {_last_line(state.last_run)}")
    about = "" if state.exact else " (~: estimated from the first elements)"
    if not counted:
        about = " (backlog, in flight, results waiting: list elements)"
    speed = f", {rate:,.0f} tasks/s done" if rate is not None else ""
    lines.append(f"counts of this run, in tasks{about}{speed}:")
    for label, key in (
        ("submitted", "submitted"),
        ("backlog", "backlog"),
        ("delayed (retries)", "delayed"),
        ("in flight", "in_flight"),
        ("done ok", "ok"),
        ("failed", "failed"),
        ("dead letters", "dead"),
        ("results waiting", "results_waiting"),
        ("results drained", "drained"),
        ("re-runs", "reruns"),
    ):
        about = "" if state.exact or key not in _ESTIMATED else "~"
        lines.append(f"  {label:<18} {about:>1}{d[key]:>12,}")
    lines.append(f"  {'queue elements':<18}  {state.elements:>12,}  (what LLEN counts)")
    lines.append(f"workers: {len(state.workers)}")
    for w in state.workers:
        health = f"last heartbeat {w.heartbeat_age:.1f} s ago, " + (
            f"lease {w.lease_left:.1f} s left"
            if w.lease_left >= 0
            else f"presumed dead {-w.lease_left:.1f} s ago"
        )
        done = ""
        if host_rates is not None:  # watching: what each host gets done, first
            host_rate = host_rates.get(w.id)
            done = f"{w.done:,} done" + (f", {host_rate:,.0f}/s" if host_rate is not None else "")
            done += "; "
        lines.append(f"  {w.host:<20} pid {w.pid:<8} {w.processes} process(es): {done}{health}")
    return "\n".join(lines)


def print_pipelines(survey: Survey, as_json: bool) -> None:
    """One line per pipeline: what waits, what runs, what is dead, and who works on it."""
    if as_json:
        found = [{"pipeline": name, **s.as_dict()} for name, s in survey.pipelines.items()]
        document = {"redis": survey.where, "cluster": survey.cluster, "pipelines": found}
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(pipelines_text(survey))


def watch_pipelines(catalog: Catalog, interval: float) -> None:
    """``status --watch`` without ``--pipeline``: the list redrawn in place."""
    from redpool.progress import watch

    watch(lambda: pipelines_text(catalog.survey()), interval)


def pipelines_text(survey: Survey) -> str:
    node = " (a Redis Cluster: every master)" if survey.cluster else ""
    if not survey.pipelines:
        return f"no pipelines in Redis at {survey.where}{node}"
    estimated = not all(s.exact for s in survey.pipelines.values())
    lines = [
        f"{len(survey.pipelines)} pipeline(s) in Redis at {survey.where}{node}; counts are tasks"
        f"{' (~: estimated from the first elements)' if estimated else ''}"
    ]
    width = max(len(name) for name in survey.pipelines)
    lines += [f"  {name:<{width}}  {_summary(state)}" for name, state in survey.pipelines.items()]
    return "\n".join(lines)


def _summary(state: Snapshot) -> str:
    about = "" if state.exact else "~"
    live = sum(1 for w in state.workers if w.lease_left >= 0)
    dead_hosts = len(state.workers) - live
    return (
        f"backlog {about}{state.backlog:,}, in flight {about}{state.in_flight:,}, "
        f"results waiting {about}{state.results:,}, dead {state.dead:,}, "
        f"stream {'closed' if state.closed else 'open'}, {live} worker(s)"
        + (f" ({dead_hosts} presumed dead)" if dead_hosts else "")
    )


def print_dead(pipe: Pipeline, limit: int, as_json: bool) -> None:
    letters = pipe.dead_letters(limit)
    total = pipe.dead_count()
    for letter in letters:
        if as_json:
            click.echo(codec.dumps(letter).decode())
        else:
            click.echo(
                f"{letter.get('id', '-')}  {letter.get('task', '-')}  {letter.get('reason', '?')}"
            )
    if not as_json:
        click.echo(f"({len(letters)} of {total} dead letter(s) shown)", err=True)


def _run_line(state: Snapshot) -> str:
    run = state.run
    if run is None:
        return "no run yet (none began, or the last one's bookkeeping expired)"
    stream = "stream closed" if state.closed else "stream open"
    started = f"started {_ago(run.started)}"
    if run.ended is not None:
        return f"run {run.id} {run.state.upper()}, {started}, ended {_ago(run.ended)}"
    return f"run {run.id} running, {started}, {stream}"


def _producer_line(p: ProducerInfo) -> str:
    if p.state == OPEN:
        lease = p.lease_left
        if lease is not None and lease < 0:
            return f"open, {p.batches} batch(es); lease ran out {-lease:.1f} s ago (presumed dead)"
        return f"open, {p.batches} batch(es); lease {lease if lease is not None else '?'} s left"
    return f"{p.state}{': ' + p.reason if p.reason else ''}"


def _last_line(last: dict[str, Any]) -> str:
    stats = last.get("stats") or {}
    producers = last.get("producers") or {}
    who = ", ".join(f"{n} {state}" for state, n in sorted(producers.items()))
    return (
        f"run {last.get('id', '?')} {str(last.get('state', '?')).upper()}: "
        f"{stats.get('submitted', 0):,} submitted, {stats.get('ok', 0):,} ok, "
        f"{stats.get('failed', 0):,} failed; producers: {who or 'none'}"
    )


def _ago(unix: float) -> str:
    seconds = max(0.0, time.time() - unix)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
