"""Every code block of the README runs, as written, against a redis-server of this test's own.

A block is ``sh``, ``python`` or ``text`` (a diagram, a sample of output or of what Redis
holds: nothing to run). What is substituted: the Redis URL ``redis://localhost:6379/0`` and
``redis-cli``'s port become this test's server, the stream consumer recipe's
``http://localhost:8000/results`` a local HTTP server of the test's; ``pip install`` is what
CI ran already (the test checks the README asks for the same), and ``pytest`` is this very
run.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from examples import factor, jobs_runner
from redpool.embedded import free_port
from tests.json_receiver import Receiver
from tests.procs import ROOT, env, read_results
from tests.redis_server import RedisServer

README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
URL = "redis://localhost:6379/0"
POST_URL = "http://localhost:8000/results"


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang == language]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.kill()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A directory like the repository's root for the examples (``examples.factor`` and the
    input are found from the current directory), whose files the blocks may write."""
    place = tmp_path / "home"
    shutil.copytree(ROOT / "examples", place / "examples")
    return place


def bash(script: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={**env(), "PATH": f"{Path(sys.executable).parent}:{env()['PATH']}"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def block_name(body: str) -> str:
    """The file a Python block is, from its first line (``# tasks.py: what it is``)."""
    return body.splitlines()[0].removeprefix("# ").split(":")[0]


def test_every_block_is_sh_python_or_text() -> None:
    languages = [lang for lang, _ in FENCE.findall(README)]
    assert languages and set(languages) <= {"sh", "python", "text"}, languages
    assert README.count("```") == 2 * len(languages), "a fence the pattern did not pair"


def test_the_quick_start_commands(home: Path) -> None:
    """The demo line runs (its install is what CI did), and the test line is CI's."""
    quick = blocks("sh")[0]
    commands = [line for line in quick.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, commands
    demo, tests = (c.split(" && ", 1) for c in commands)
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert demo[0] == "pip install -e ." and " && ".join(tests) == ci
    done = bash(demo[1], home)
    assert done.returncode == 0, done.stderr
    assert "redpool: 2000 task(s) in" in done.stderr and "2000 ok, 0 failed" in done.stderr
    assert len(read_results(home / "factors.jsonl")) == 2000


def test_the_multi_host_run_by_hand(server: RedisServer, home: Path) -> None:
    (by_hand,) = [b for b in blocks("sh") if "--exit-when-done &" in b and "--cluster" not in b]
    assert f"export REDIS_URL={URL}" in by_hand
    done = bash(by_hand.replace(URL, server.url), home)
    assert done.returncode == 0, done.stderr
    (count,) = read_results(home / "counts.jsonl")
    assert count["value"]["matches"] == 2 and count["value"]["lines"] == 3


def test_the_python_api_example(server: RedisServer, tmp_path: Path) -> None:
    """tasks.py for the workers, submit.py beside it: a worker host loads tasks.py (without
    running a producer at import), submit.py produces and drains, and prints the summary."""
    files = {}
    for body in blocks("python"):
        name = block_name(body)
        if name.startswith("examples/"):
            continue  # a recipe: test_the_recipes
        files[name] = body
        (tmp_path / name).write_text(body.replace(URL, server.url))
    assert set(files) == {"tasks.py", "submit.py"}
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "redpool", "worker", "--redis", server.url),
            *("--tasks", "tasks", "--processes", "2", "--exit-when-done"),
        ],
        cwd=tmp_path,
        env=env(),
        stderr=subprocess.PIPE,
    )
    try:
        run = subprocess.run(
            [sys.executable, "submit.py"],
            cwd=tmp_path,
            env=env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert lines[-1] == "complete 20010 0", lines[-1]
        assert '"value":[7,13]' in run.stdout.replace(" ", "")
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    finally:
        worker.kill()


def test_the_redis_cli_examples(server: RedisServer, tmp_path: Path) -> None:
    (examples,) = [b for b in blocks("sh") if b.startswith("redis-cli")]
    done = bash(examples.replace("redis-cli ", f"redis-cli -p {server.port} "), tmp_path)
    assert done.returncode == 0 and "ERR" not in done.stdout, done.stdout + done.stderr
    assert server.client().llen("redpool:{default}:tasks") == 2


@pytest.mark.parametrize("recipe", ["wordcount", "jobs_runner", "forward"])
def test_the_recipes(server: RedisServer, home: Path, recipe: str) -> None:
    """Each recipe's Python block is its module in examples/, as it is there; the block, as
    written in the README, then runs through the recipe's sh block (a worker host loading
    the module, the caller, the host stopped), and its output is checked."""
    (code,) = [b for b in blocks("python") if block_name(b) == f"examples/{recipe}.py"]
    assert code == (ROOT / "examples" / f"{recipe}.py").read_text()
    (home / "examples" / f"{recipe}.py").write_text(code.replace(URL, server.url))
    (script,) = [b for b in blocks("sh") if f"python -m examples.{recipe} " in b]
    receiver = Receiver()
    try:
        script = script.replace(URL, server.url).replace(POST_URL, receiver.url)
        done = bash(script, home)
    finally:
        receiver.close()
    assert done.returncode == 0, done.stderr
    if recipe == "wordcount":
        assert done.stdout.splitlines() == ["4\tGET", "3\t/a", "2\t200"]
    elif recipe == "jobs_runner":
        lines = (home / "digests.txt").read_text().splitlines()
        assert lines == [f"{j} {jobs_runner.digest(j, 20_000)}" for j in range(100)]
    else:
        expected = [{"input": n, "value": factor.factorise(n)} for n in range(2, 1002)]
        assert receiver.bodies == expected


def _cluster_ports() -> list[int]:
    """Three ports free, each with its cluster bus port (+10000) free too."""
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port()
        if port + 10000 < 65536 and port not in ports and _free(port + 10000):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_the_scaling_out_block(home: Path, tmp_path: Path) -> None:
    """The local cluster of the README: three masters formed with redis-cli, a pipeline of
    six shards through one node's URL, every number factorised once; the servers it starts
    are shut down by the block itself (and here, if it fails)."""
    (block,) = [b for b in blocks("sh") if "--cluster-enabled yes" in b]
    ports = _cluster_ports()
    script = block.replace("/tmp/redpool-cluster", str(tmp_path / "cluster"))
    for old, new in zip((7001, 7002, 7003), ports, strict=True):
        script = script.replace(str(old), str(new))
    try:
        done = bash(script, home)
        assert done.returncode == 0, done.stderr
        assert "[OK] All 16384 slots covered." in done.stdout
        results = read_results(home / "factors.jsonl")
        expected = sorted(factor.factorise(n) for n in range(1, 2001))
        assert sorted(r["value"] for r in results) == expected
        (numbers,) = re.findall(r"\[[\d,]+\]$", done.stdout, re.M)  # after redis-cli's colours
        assert len(orjson.loads(numbers)) == 6, done.stdout
    finally:
        for port in ports:
            if _listening(port):  # the block stopped before its own shutdown
                with contextlib.suppress(redis.RedisError):
                    redis.Redis(port=port, socket_timeout=2).shutdown(nosave=True)
