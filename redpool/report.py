"""What ``redpool status`` and ``redpool dead list`` print."""

from __future__ import annotations

import click
import orjson

from redpool import codec
from redpool.pipeline import Pipeline

_ESTIMATED = {"backlog", "in_flight", "results_waiting"}


def print_status(pipe: Pipeline, as_json: bool) -> None:
    state = pipe.snapshot(count_tasks=True)
    if as_json:
        click.echo(orjson.dumps(state.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    d = state.as_dict()
    click.echo(
        f"pipeline {pipe.name!r}: stream {d['stream']} "
        f"({state.producers_open} producer(s) open, {state.producers_closed} closed); "
        f"counts are tasks{'' if state.exact else ' (~: estimated from the first elements)'}"
    )
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
    ):
        about = "" if state.exact or key not in _ESTIMATED else "~"
        click.echo(f"  {label:<18} {about:>1}{d[key]:>12,}")
    click.echo(f"  {'queue elements':<18}  {state.elements:>12,}  (what LLEN counts)")
    click.echo(f"workers: {len(state.workers)}")
    for w in state.workers:
        health = f"last heartbeat {w.heartbeat_age:.1f} s ago, " + (
            f"lease {w.lease_left:.1f} s left"
            if w.lease_left >= 0
            else f"presumed dead {-w.lease_left:.1f} s ago"
        )
        click.echo(f"  {w.host:<20} pid {w.pid:<8} {w.processes} process(es)  {health}")


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
