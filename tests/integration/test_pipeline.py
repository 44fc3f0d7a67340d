"""The CLI end to end against a real redis-server: producer -> 2 worker processes -> sink."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import redis

from tests.procs import (
    ROOT,
    Host,
    all_keys_in_prefix,
    assert_exactly_once,
    assert_nothing_left,
    read_results,
    redpool,
    wait_for,
)
from tests.redis_server import RedisServer

N = 10_000


def expected_ids(results: list[dict[str, Any]], n: int) -> set[str]:
    producers = {r["producer"] for r in results if "producer" in r}
    assert len(producers) == 1
    producer = producers.pop()
    return {f"{producer}-{i}" for i in range(1, n + 1)}


def test_ten_thousand_tasks_through_two_processes(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """Every submitted task has exactly one result, and the queues are empty at the end."""
    url = redis_server.url
    host = Host(url, pipeline, "--exit-when-done", log=tmp_path / "worker.log")
    lines = b"".join(b"%d\n" % i for i in range(N))
    produced = redpool(
        "produce",
        "--redis",
        url,
        "--pipeline",
        pipeline,
        "--task",
        "echo",
        "--max-backlog",
        "3000",
        input=lines,
    )
    assert produced.returncode == 0, produced.stderr
    assert b"submitted 10000 task(s)" in produced.stderr
    out = tmp_path / "results.jsonl"
    sunk = redpool("sink", "--redis", url, "--pipeline", pipeline, "--output", str(out))
    assert sunk.returncode == 0, sunk.stderr
    assert b"10000 result(s): 10000 ok, 0 failed" in sunk.stderr
    assert host.wait() == 0, host.output()
    results = read_results(out)
    assert_exactly_once(results, expected_ids(results, N))
    assert sorted(r["value"] for r in results) == list(range(N))
    workers = {str(r["worker"]).rsplit(":", 1)[1] for r in results}
    assert workers == {"0", "1"}, "both processes worked"
    assert_nothing_left(real_redis, pipeline)
    assert all_keys_in_prefix(real_redis, pipeline) == []
    assert real_redis.hlen(f"redpool:{{{pipeline}}}:workers") == 0  # deregistered


def test_bad_lines_are_named_and_the_good_ones_still_run(
    redis_server: RedisServer, pipeline: str, tmp_path: Path
) -> None:
    url = redis_server.url
    data = b'[1, 2]\n{"a": 3, "b": 4}\nnot json\n\n[5, 6]\n{"a": 1\n'
    produced = redpool(
        "produce", "--redis", url, "--pipeline", pipeline, "--task", "add", input=data
    )
    assert produced.returncode == 1
    err = produced.stderr.decode()
    assert "<stdin>:3: not JSON" in err and "<stdin>:6: not JSON" in err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "redpool: error: 2 bad input line(s) skipped"
    host = Host(url, pipeline, "--exit-when-done", log=tmp_path / "w.log")
    out = tmp_path / "r.jsonl"
    assert (
        redpool("sink", "--redis", url, "--pipeline", pipeline, "--output", str(out)).returncode
        == 0
    )
    assert host.wait() == 0
    assert sorted(r["value"] for r in read_results(out)) == [3, 7, 11]


def test_garbage_unknown_tasks_and_bad_arguments_go_to_the_dead_list(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    """Bad payloads are dead-lettered with a reason; the workers and the run go on."""
    url = redis_server.url
    tasks = f"redpool:{{{pipeline}}}:tasks"
    real_redis.rpush(
        tasks,
        b"\xff\xfe not json",
        b"[1,2,3]",
        b'{"id": "u1", "task": "os.system", "args": ["id"]}',
    )
    produced = redpool(
        "produce",
        "--redis",
        url,
        "--pipeline",
        pipeline,
        "--task",
        "add",
        input=b"[1, 2]\n[1]\n[3, 4]\n",
    )
    assert produced.returncode == 0
    # the one host: no other to give the unknown task back for
    host = Host(url, pipeline, "--exit-when-done", "--unknown-wait", "0", log=tmp_path / "w.log")
    out = tmp_path / "r.jsonl"
    sunk = redpool("sink", "--redis", url, "--pipeline", pipeline, "--output", str(out))
    assert sunk.returncode == 0 and b"4 result(s): 2 ok, 2 failed" in sunk.stderr
    assert host.wait() == 0
    results = read_results(out)
    assert sorted(r["value"] for r in results if r["ok"]) == [3, 7]
    dead = redpool("dead", "list", "--redis", url, "--pipeline", pipeline, "--json")
    letters = [orjson.loads(line) for line in dead.stdout.splitlines()]
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters)
    assert reasons == [
        "a task must be a JSON object, not list",
        "not JSON",
        "unknown task 'os.system' (not registered with this worker)",
        "wrong arguments for task 'add'",
    ]
    retry = redpool("dead", "retry", "--redis", url, "--pipeline", pipeline)
    assert b"2 task(s) sent back; 2 unrunnable kept" in retry.stdout
    purge = redpool("dead", "purge", "--redis", url, "--pipeline", pipeline)
    assert b"2 dead letter(s) dropped" in purge.stdout


def test_status_reports_the_pipeline_and_its_workers(
    redis_server: RedisServer, real_redis: redis.Redis, pipeline: str, tmp_path: Path
) -> None:
    url = redis_server.url
    redpool("produce", "--redis", url, "--pipeline", pipeline, "--task", "echo", input=b"1\n2\n")
    data = orjson.loads(redpool("status", "--redis", url, "--pipeline", pipeline, "--json").stdout)
    assert data["backlog"] == 2 and data["submitted"] == 2 and data["stream"] == "closed"
    assert data["workers"] == []
    host = Host(url, pipeline, log=tmp_path / "w.log")
    wait_for(
        lambda: int(real_redis.hget(f"redpool:{{{pipeline}}}:stats", "ok") or 0) == 2,
        what="the two tasks to run",
    )
    data = orjson.loads(redpool("status", "--redis", url, "--pipeline", pipeline, "--json").stdout)
    assert data["backlog"] == 0 and data["ok"] == 2 and data["results_waiting"] == 2
    (worker,) = data["workers"]
    assert worker["pid"] == host.proc.pid and worker["processes"] == 2
    assert 0 <= worker["heartbeat_age"] <= 15  # the default lease
    assert abs(worker["heartbeat_age"] + worker["lease_left"] - 15) < 0.2
    human = redpool("status", "--redis", url, "--pipeline", pipeline)
    assert human.returncode == 0 and b"last heartbeat" in human.stdout
    host.signal(15)
    assert host.wait() == 0


def test_unreachable_redis_is_one_line_and_non_zero(tmp_path: Path) -> None:
    from redpool.embedded import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    for args in (
        ["worker", "--tasks", "tests.jobs"],
        ["sink"],
        ["status"],
        ["produce", "--task", "echo"],
    ):
        done = redpool(*args, "--redis", url, "--wait-for-redis", "0.3", input=b"1\n")
        err = done.stderr.decode()
        assert done.returncode == 1, (args, err)
        assert err.startswith("redpool: error: cannot reach Redis at") and err.count("\n") == 1


def test_configuration_mistakes_are_one_line(redis_server: RedisServer) -> None:
    cases = [
        (["worker", "--tasks", "no_such_tasks_module"], 1, "not found"),
        (["worker", "--tasks", "tests.jobs", "--processes", "0"], 2, "--processes"),
        (["worker", "--tasks", "tests.jobs", "--lease", "0.1"], 2, "--lease"),
        (["produce", "--task", "echo", "--max-backlog", "0"], 2, "--max-backlog"),
        (["sink", "--pipeline", "bad name"], 2, "pipeline name"),
        (["worker", "--bogus"], 2, "No such option"),
        (["frobnicate"], 2, "No such command"),
        (["status", "--redis", "http://x"], 1, "bad Redis URL"),
    ]
    for args, code, text in cases:
        done = (
            redpool(*args, "--redis", redis_server.url) if "--redis" not in args else redpool(*args)
        )
        err = done.stderr.decode()
        assert done.returncode == code, (args, err)
        assert text in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)


def test_password_in_url(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "auth")
    server.start()
    try:
        client = server.client()
        client.config_set("requirepass", "s3cret")
        good = redpool("status", "--redis", f"redis://:s3cret@127.0.0.1:{server.port}/0")
        assert good.returncode == 0, good.stderr
        bad = redpool("status", "--redis", f"redis://:wrong@127.0.0.1:{server.port}/0")
        assert bad.returncode == 1 and b"refused" in bad.stderr
        assert b"wrong" not in bad.stderr  # the password is not echoed
    finally:
        server.kill()


def test_demo_runs_on_its_own_redis(tmp_path: Path) -> None:
    """``redpool run`` without --redis starts and stops a private Redis."""
    out = tmp_path / "factors.jsonl"
    numbers = tmp_path / "n.jsonl"
    numbers.write_text("".join(f"{n}\n" for n in (12, 97, 1001, 2**31 - 1, 600851475143)))
    done = redpool(
        "run",
        "--tasks",
        "examples.factor",
        "--task",
        "factorise",
        "--input",
        str(numbers),
        "--output",
        str(out),
        "--processes",
        "2",
    )
    assert done.returncode == 0, done.stderr
    values = {
        r["value"][0] if len(r["value"]) == 1 else tuple(r["value"]) for r in read_results(out)
    }
    assert values == {(2, 2, 3), 97, (7, 11, 13), 2**31 - 1, (71, 839, 1471, 6857)}


def test_compose_file_is_valid(tmp_path: Path) -> None:
    import shutil

    from tests.redis_server import unavailable

    exe = shutil.which("docker-compose")
    if exe is None:
        unavailable("docker-compose (Debian package) is not installed")
    done = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    config = done.stdout.decode()
    for service in ("redis:", "producer:", "workers:", "sink:"):
        assert service in config
    assert "appendonly" in config


def test_demo_falls_back_to_fakeredis_without_redis_server(tmp_path: Path) -> None:
    """On a machine without redis-server, ``redpool run`` serves fakeredis over TCP."""
    import os
    import sys

    numbers = tmp_path / "n.jsonl"
    numbers.write_text("".join(f"{n}\n" for n in range(2, 202)))
    out = tmp_path / "f.jsonl"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "redpool",
            "run",
            "--tasks",
            "examples.factor",
            "--task",
            "factorise",
            "--input",
            str(numbers),
            "--output",
            str(out),
            "--processes",
            "2",
        ],
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = read_results(out)
    assert sorted(r["value"] for r in results)[:3] == [[2], [2, 2], [2, 2, 2]]
    assert len(results) == 200


def test_log_counting_example(tmp_path: Path) -> None:
    """The second example: count matching lines in a folder of plain and gzipped logs."""
    import gzip

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("ok\nERROR disk\nok\nERROR net\n")
    with gzip.open(logs / "b.log.gz", "wt") as f:
        f.write("ERROR x\n" * 7 + "fine\n" * 3)
    lines = "".join(f'["{p}", "ERROR"]\n' for p in sorted(logs.iterdir()))
    (tmp_path / "in.jsonl").write_text(lines)
    out = tmp_path / "counts.jsonl"
    done = redpool(
        "run",
        "--tasks",
        "examples.logs",
        "--task",
        "count_matches",
        "--input",
        str(tmp_path / "in.jsonl"),
        "--output",
        str(out),
        "--processes",
        "2",
    )
    assert done.returncode == 0, done.stderr
    counts = {Path(str(r["value"]["path"])).name: r["value"] for r in read_results(out)}
    assert counts["a.log"] == {"path": str(logs / "a.log"), "lines": 4, "matches": 2}
    assert counts["b.log.gz"]["matches"] == 7 and counts["b.log.gz"]["lines"] == 10
