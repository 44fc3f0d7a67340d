"""Issue 14, the careless and hostile world: a Redis that evicts, outputs that cannot be
written or are the input, secrets in messages and process titles, a password rotated mid-run,
the narrowest ACL, a name with a newline, error results without tracebacks. Each against a
real redis-server, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from redpool.errors import ConfigError, SettingError
from redpool.producer import Producer
from tests.procs import ROOT, Host, env, error_line, read_results, redpool, wait_for
from tests.redis_server import RedisServer

ROLES = [
    ("produce", "--task", "echo"),
    ("sink",),
    ("worker", "--tasks", "tests.jobs"),
    ("run", "--tasks", "tests.jobs", "--task", "echo", "--input", "-"),
]


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server with an ACL user alice (password pw-alice) who may do anything."""
    server = RedisServer(tmp_path / "locked").start()
    try:
        server.client().acl_setuser(
            "alice", enabled=True, passwords=["+pw-alice"], keys=["*"], commands=["+@all"]
        )
        yield server
    finally:
        server.kill()


def alice(server: RedisServer) -> str:
    return f"redis://alice:pw-alice@127.0.0.1:{server.port}/0"


def test_every_role_refuses_a_redis_that_evicts(tmp_path: Path) -> None:
    """Under allkeys-lru a full Redis drops tasks and results silently: every role refuses to
    start, in one line that gives the fix; status still looks."""
    server = RedisServer(tmp_path / "lru", extra=["--maxmemory-policy", "allkeys-lru"]).start()
    try:
        for role in ROLES:
            line = error_line(redpool(*role, "--redis", server.url, input=b"1\n"))
            assert line == (
                f"redpool: error: Redis at {server.url} evicts keys when it is full "
                "(maxmemory-policy allkeys-lru), which loses tasks and results silently: run "
                "CONFIG SET maxmemory-policy noeviction (and set it in redis.conf)"
            ), role
        with pytest.raises(ConfigError, match="maxmemory-policy allkeys-lru"):
            Producer(server.client(), "api")
        assert redpool("status", "--redis", server.url).returncode == 0
    finally:
        server.kill()


def test_a_user_who_may_not_ask_the_policy_goes_on(tmp_path: Path) -> None:
    """CONFIG and INFO refused by an ACL: nothing to tell, nothing said, the role runs."""
    server = RedisServer(tmp_path / "acl", extra=["--maxmemory-policy", "allkeys-lru"]).start()
    try:
        server.client().acl_setuser(
            "bob",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            commands=["+@all", "-config", "-info"],
        )
        url = f"redis://bob:pw@127.0.0.1:{server.port}/0"
        done = redpool("produce", "--redis", url, "--task", "echo", input=b"1\n")
        assert done.returncode == 0 and b"maxmemory" not in done.stderr, done.stderr
    finally:
        server.kill()


def test_run_refuses_its_input_as_its_output(tmp_path: Path) -> None:
    """run writes its output anew: the input as the output is refused before it is touched."""
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"1\n2\n")
    line = error_line(
        redpool(
            *("run", "--tasks", "tests.jobs", "--task", "echo"),
            *("--input", str(data), "--output", str(tmp_path / "." / "in.jsonl")),
        ),
    )
    assert line.startswith("redpool: error: --output ") and "is the input file" in line
    assert data.read_bytes() == b"1\n2\n"


def test_a_full_disk_is_one_line_and_the_results_stay(
    redis_server: RedisServer, pipeline: str, tmp_path: Path
) -> None:
    """A write that fails (/dev/full: no space) is one line and exit 1; nothing was
    acknowledged, so a sink with room writes every result."""
    url = redis_server.url
    assert (
        redpool(
            "produce", "--redis", url, "--pipeline", pipeline, "--task", "echo", input=b"1\n2\n3\n"
        ).returncode
        == 0
    )
    host = Host(url, pipeline, "--exit-when-done", log=tmp_path / "w.log", processes=1)
    assert host.wait() == 0, host.output()
    line = error_line(
        redpool("sink", "--redis", url, "--pipeline", pipeline, "--output", "/dev/full")
    )
    assert line == (
        "redpool: error: cannot write results to '/dev/full': No space left on device; they "
        "stay in Redis, unacknowledged, for the next sink"
    )
    out = tmp_path / "out.jsonl"
    done = redpool("sink", "--redis", url, "--pipeline", pipeline, "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(r["value"] for r in read_results(out)) == [1, 2, 3]


def test_status_into_a_closed_pipe_exits_0_quietly(redis_server: RedisServer) -> None:
    """`redpool status | head -2`: the reader is gone; what it wanted it has."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-P", "-m", "redpool", "status", "--redis", redis_server.url],
            stdout=write,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env(),
            timeout=60,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (0, b"")


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/0?password=sekret",
        "redis://:sekret@127.0.0.1:1/0?password=sekret",
        "redis//:sekret@127.0.0.1:1/0",
        "redis://127.0.0.1:1/0?password=sekret&&db",
    ],
)
def test_no_password_in_a_message(url: str) -> None:
    line = error_line(redpool("status", "--redis", url, "--wait-for-redis", "0"))
    assert "sekret" not in line, line


def test_no_password_in_the_process_titles(locked: RedisServer, tmp_path: Path) -> None:
    """ps shows the supervisor's and every child's command line: the password is masked."""
    host = Host(alice(locked), "titles", log=tmp_path / "w.log", processes=2)
    wait_for(lambda: len(host.children()) == 2, what="the children")
    for pid in (host.proc.pid, *host.children()):
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert b"pw-alice" not in title and b"redis://***@127.0.0.1" in title, title
    host.signal(15)
    assert host.wait() == 0, host.output()


def test_a_password_rotated_mid_run_ends_the_host(locked: RedisServer, tmp_path: Path) -> None:
    """WRONGPASS on reconnecting is not an outage: one line and a non-zero exit, not retries
    for ever."""
    host = Host(alice(locked), "rotated", log=tmp_path / "w.log", processes=1)
    admin = locked.client()
    wait_for(lambda: admin.hlen("redpool:{rotated}:workers") == 1, what="the host to register")
    admin.acl_setuser("alice", enabled=True, passwords=["+rotated"], reset_passwords=True)
    admin.client_kill_filter(user="alice")
    assert host.wait(timeout=60) == 1, host.output()
    out = host.output()
    assert "Traceback" not in out and "refused the password in the URL" in out, out
    assert "pw-alice" not in out


def test_a_redis_error_in_a_child_is_one_line(locked: RedisServer, tmp_path: Path) -> None:
    """A command the ACL takes away mid-run: the child says so in one line, no traceback."""
    host = Host(alice(locked), "refused", log=tmp_path / "w.log", processes=1)
    admin = locked.client()
    wait_for(lambda: admin.hlen("redpool:{refused}:workers") == 1, what="the host to register")
    admin.acl_setuser("alice", enabled=True, commands=["-lmove", "-blmove"])
    wait_for(lambda: "child 0 stopped: " in host.output(), what="the child to stop")
    host.kill_host()
    out = host.output()
    assert "Traceback" not in out, out
    assert "does not allow the user in the URL what redpool needs" in out


ROLE_ACL = ["-@all", "+@read", "+@write", "+@scripting", "+@transaction", "+@connection", "+time"]
LOOK_ACL = ["-@all", "+@read", "+@scripting", "+@connection", "+time"]


def test_the_readme_acls_are_enough(tmp_path: Path) -> None:
    """The README's ACLs: the roles' (its pipeline's keys only) runs a whole run; the
    read-only one shows status."""
    server = RedisServer(tmp_path / "acl").start()
    try:
        admin = server.client()
        admin.acl_setuser(
            "roles", enabled=True, passwords=["+pw"], keys=["redpool:{acl}:*"], commands=ROLE_ACL
        )
        admin.acl_setuser(
            "looker", enabled=True, passwords=["+pw"], keys=["redpool:*"], commands=LOOK_ACL
        )
        url = f"redis://roles:pw@127.0.0.1:{server.port}/0"
        produced = redpool(
            "produce", "--redis", url, "--pipeline", "acl", "--task", "echo", input=b"1\n2\n"
        )
        assert produced.returncode == 0, produced.stderr
        host = Host(url, "acl", "--exit-when-done", log=tmp_path / "w.log", processes=1)
        out = tmp_path / "out.jsonl"
        sunk = redpool("sink", "--redis", url, "--pipeline", "acl", "--output", str(out))
        assert sunk.returncode == 0, sunk.stderr
        assert host.wait() == 0, host.output()
        assert sorted(r["value"] for r in read_results(out)) == [1, 2]
        look = f"redis://looker:pw@127.0.0.1:{server.port}/0"
        for args in (("status",), ("status", "--pipeline", "acl")):
            shown = redpool(*args, "--redis", look)
            assert shown.returncode == 0, shown.stderr
    finally:
        server.kill()


def test_a_pipeline_name_with_a_trailing_newline_is_refused(redis_server: RedisServer) -> None:
    line = error_line(redpool("status", "--redis", redis_server.url, "--pipeline", "abc\n"), 2)
    assert "is not allowed" in line
    with pytest.raises(SettingError):
        Producer(redis_server.client(), "abc\n")


def test_no_tracebacks_sends_type_and_message_only(
    redis_server: RedisServer, pipeline: str, tmp_path: Path
) -> None:
    """By default an error result carries the traceback, file paths and all; a worker with
    --no-tracebacks sends the type and message alone."""
    url = redis_server.url
    traces: list[str] = []
    for extra in ((), ("--no-tracebacks",)):
        name = f"{pipeline}{len(traces)}"
        redpool("produce", "--redis", url, "--pipeline", name, "--task", "boom", input=b"1\n")
        host = Host(url, name, "--exit-when-done", *extra, log=tmp_path / "w.log", processes=1)
        assert host.wait() == 0, host.output()
        out = tmp_path / f"{name}.jsonl"
        assert redpool(
            "sink", "--redis", url, "--pipeline", name, "--output", str(out)
        ).returncode in (0, 3)
        (result,) = read_results(out)
        assert result["error"]["type"] == "ValueError" and result["error"]["message"] == "boom 1"
        traces.append(result["error"]["traceback"])
    assert "jobs.py" in traces[0] and traces[1] == ""
    assert orjson.dumps(traces)
