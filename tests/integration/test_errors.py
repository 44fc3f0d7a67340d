"""Errors a user cannot act on become one line that says what to do: every command, against a
real redis-server that wants a password (a Redis Cluster's: tests/integration/test_cluster.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.procs import Host, error_line, redpool, wait_for
from tests.redis_server import RedisServer

COMMANDS = [
    ("status",),
    ("status", "--pipeline", "default"),
    ("produce", "--task", "echo"),
    ("sink",),
    ("worker", "--tasks", "tests.jobs"),
    ("run", "--tasks", "tests.jobs", "--task", "echo", "--input", "-"),
]
"""Every command that talks to Redis (run only when --redis is given)."""
PASSWORD_FORMS = "(redis://:PASSWORD@host:port/0 or redis://USER:PASSWORD@...)"


def json_of(done: subprocess.CompletedProcess[bytes]) -> Any:
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def every_command(url: str, *extra: str) -> Iterator[tuple[tuple[str, ...], str]]:
    """(command, its one error line) for every command run against ``url``."""
    for command in COMMANDS:
        args = (*command, *extra, "--redis", url, "--wait-for-redis", "1")
        yield command, error_line(redpool(*args, input=b"1\n", timeout=60))


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose default user needs the password s3cret, and an ACL user alice
    (password pw-alice) who may do anything."""
    server = RedisServer(tmp_path / "locked").start()
    try:
        admin = server.client()
        admin.acl_setuser(
            "alice", enabled=True, passwords=["+pw-alice"], keys=["*"], commands=["+@all"]
        )
        admin.config_set("requirepass", "s3cret")
        yield server
    finally:
        server.kill()


def test_no_password_says_to_put_one_in_the_url(locked: RedisServer) -> None:
    url = f"redis://127.0.0.1:{locked.port}/0"
    for command, line in every_command(url):
        assert line == (
            f"redpool: error: Redis at {url} needs a password: put it in the URL {PASSWORD_FORMS}"
        ), command


def test_no_password_when_only_acl_users_may_log_in(tmp_path: Path) -> None:
    """The default user switched off, an ACL user alone: the same line."""
    server = RedisServer(tmp_path / "acl").start()
    try:
        admin = server.client()
        admin.acl_setuser("alice", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
        admin.acl_setuser("default", enabled=False)
        url = f"redis://127.0.0.1:{server.port}/0"
        status = error_line(redpool("status", "--redis", url))
        assert status == (
            f"redpool: error: Redis at {url} needs a password: put it in the URL {PASSWORD_FORMS}"
        )
        good = redpool("status", "--redis", f"redis://alice:pw@127.0.0.1:{server.port}/0")
        assert good.returncode == 0, good.stderr
    finally:
        server.kill()


@pytest.mark.parametrize("credentials", [":wrong-pw", "alice:wrong-pw", "nobody:wrong-pw"])
def test_a_wrong_password_is_refused_and_never_printed(
    locked: RedisServer, credentials: str
) -> None:
    url = f"redis://{credentials}@127.0.0.1:{locked.port}/0"
    shown = f"redis://***@127.0.0.1:{locked.port}/0"
    for command, line in every_command(url):
        assert line == (
            f"redpool: error: Redis at {shown} refused the password in the URL "
            f"(invalid username-password pair or user is disabled.): check it {PASSWORD_FORMS}"
        ), command
        assert "wrong-pw" not in line and "alice" not in line


def test_the_right_passwords_work(locked: RedisServer) -> None:
    for credentials in (":s3cret", "alice:pw-alice"):
        url = f"redis://{credentials}@127.0.0.1:{locked.port}/0"
        done = redpool("status", "--redis", url)
        assert done.returncode == 0, done.stderr
        assert (
            done.stdout
            == f"no pipelines in Redis at redis://***@127.0.0.1:{locked.port}/0\n".encode()
        )


def test_status_names_the_pipelines_there_when_asked_for_one_that_is_not(
    tmp_path: Path,
) -> None:
    """A misspelled --pipeline is an error naming the pipelines there are, not zeros."""
    server = RedisServer(tmp_path / "names").start()
    try:
        url = server.url
        ask = ("status", "--redis", url, "--pipeline", "misspelled")
        assert error_line(redpool(*ask)) == (
            f"redpool: error: no pipeline 'misspelled' in Redis at {url} (no pipelines there)"
        )
        for name in ("b-two", "a.one"):
            redpool("produce", "--redis", url, "--pipeline", name, "--task", "echo", input=b"1\n")
        # a key of a holder alone makes a pipeline too (found by SCAN, not by EXISTS)
        server.client().rpush("redpool:{c_held}:inflight:host-1-ab:0", b"x")
        server.client().set("redpool:not-a-pipeline", b"x")
        assert error_line(redpool(*ask, "--json")) == (
            f"redpool: error: no pipeline 'misspelled' in Redis at {url} "
            "(pipelines there: a.one, b-two, c_held)"
        )
        shown = redpool("status", "--redis", url, "--pipeline", "c_held")
        assert shown.returncode == 0 and b"pipeline 'c_held'" in shown.stdout, shown.stderr
    finally:
        server.kill()


def test_status_without_a_pipeline_lists_them(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "list").start()
    try:
        url = server.url
        empty = redpool("status", "--redis", url)
        assert empty.returncode == 0, empty.stderr
        assert empty.stdout.decode() == f"no pipelines in Redis at {url}\n"
        assert json_of(redpool("status", "--redis", url, "--json")) == {
            "redis": url,
            "cluster": False,
            "pipelines": [],
        }
        produce = ("produce", "--redis", url, "--pipeline", "logs", "--task", "echo")
        assert redpool(*produce, input=b"1\n2\n3\n").returncode == 0
        host = Host(url, "logs", log=tmp_path / "worker.log", processes=1)
        client = server.client()
        wait_for(lambda: client.hget("redpool:{logs}:stats", "ok") == b"3", what="the tasks to run")
        client.rpush("redpool:{a}:dead", b'{"reason": "by hand"}')
        client.rpush("redpool:{a}:results", b'{"id": "x", "ok": true, "value": 1}')
        client.hset("redpool:{a}:producers", "p", 0)
        client.set("redpool:{bad name}:tasks", b"x")  # not a name a pipeline can have
        listed = redpool("status", "--redis", url)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.decode().splitlines() == [
            f"2 pipeline(s) in Redis at {url}; counts are tasks",
            "  a     backlog 0, in flight 0, results waiting 1, dead 1, stream open, 0 worker(s)",
            "  logs  backlog 0, in flight 0, results waiting 3, dead 0, stream closed, 1 worker(s)",
        ]
        data = json_of(redpool("status", "--redis", url, "--json"))
        assert [p["pipeline"] for p in data["pipelines"]] == ["a", "logs"]
        logs = data["pipelines"][1]
        assert logs["results_waiting"] == 3 and logs["stream"] == "closed"
        assert [w["pid"] for w in logs["workers"]] == [host.proc.pid]
        one = json_of(redpool("status", "--redis", url, "--pipeline", "logs", "--json"))
        assert one["results_waiting"] == 3 and "pipelines" not in one
        host.signal(15)
        assert host.wait() == 0, host.output()
    finally:
        server.kill()
