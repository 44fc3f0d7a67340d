"""The progress line, rates, status with host rates, and JSON logs: pure functions."""

from __future__ import annotations

import logging

import orjson

from redpool.logs import JsonFormatter
from redpool.progress import Rate, progress_line
from redpool.report import status_text
from redpool.state import ProducerInfo, RunInfo, Snapshot, WorkerInfo


def snapshot(closed: bool, **stats: int) -> Snapshot:
    return Snapshot(
        backlog=40,
        delayed=0,
        in_flight=10,
        results=0,
        dead=0,
        stats=stats,
        run=RunInfo(id=3, state="running", started=0.0),
        producers=[ProducerInfo("p", "closed" if closed else "open")],
        workers=[WorkerInfo("w1", "hostA", 7, 2, 10.0, 1.0, done=500)],
    )


def test_a_rate_follows_the_count_and_ignores_a_repeated_moment() -> None:
    rate = Rate(smoothing=1.0)
    assert rate.see(0, 10.0) is None
    assert rate.see(100, 11.0) == 100
    assert rate.see(100, 11.0) == 100  # the same heartbeat seen twice: no new sample
    assert rate.see(400, 12.0) == 300


def test_the_progress_line_gives_share_rate_eta_and_failures_once_the_stream_closed() -> None:
    state = snapshot(True, submitted=1000, ok=700, failed=50, drained=600)
    line = progress_line(state, "drained", 100.0)
    assert line == "run 3: 600 / 1,000 drained (60%), 100/s, ETA 0:04, 50 failed"
    done = progress_line(state, "done", 250.0)
    assert "750 / 1,000 done (75%), 250/s, ETA 0:01" in done


def test_no_eta_while_the_stream_is_open() -> None:
    line = progress_line(snapshot(False, submitted=10, ok=5), "done", 5.0)
    assert "ETA" not in line and line.endswith("; stream open")
    assert progress_line(snapshot(False, submitted=10), "submitted", None) == (
        "run 3: 10 submitted; stream open"
    )


def test_watched_status_shows_each_hosts_count_and_rate() -> None:
    text = status_text("p", snapshot(False, submitted=10), 12.0, {"w1": 250.0})
    assert "12 tasks/s done" in text
    assert "hostA" in text and "500 done, 250/s;" in text
    assert "done," not in status_text("p", snapshot(False, submitted=10))


def test_json_logs_are_one_object_per_line() -> None:
    record = logging.LogRecord("redpool.workers", logging.WARNING, "f", 1, "lost %d", (3,), None)
    body = orjson.loads(JsonFormatter().format(record))
    assert body["level"] == "WARNING" and body["logger"] == "redpool.workers"
    assert body["message"] == "lost 3" and body["time"].endswith("Z")
