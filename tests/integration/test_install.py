"""One installed package, and a user's directory that cannot stand in for redpool's modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.procs import ROOT, env, read_results
from tests.redis_server import RedisServer

DECOY = "raise SystemExit(\"the user's own {name} was imported instead of redpool's\")\n"
TASKS = "from redpool import task\n\n\n@task\ndef double(x: int) -> int:\n    return 2 * x\n"


def test_the_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    """What ``pip install .`` puts into site-packages: redpool and its dist-info, nothing
    named producer, workers or sink at the top level. Built from a copy of the checkout, so
    no build/ left over from an earlier build can slip old files in."""
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests", "bench")
    shutil.copytree(ROOT, source, symlinks=True, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("redpool-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "redpool",
        wheel.name.split("-py")[0] + ".dist-info",
    }
    for role in ("producer", "workers", "sink"):
        assert f"redpool/{role}/__init__.py" in names
    assert "redpool/py.typed" in names and "redpool/scripts/push.lua" in names


def user_directory(tmp_path: Path) -> Path:
    """A project of the user's own with packages named like redpool's roles, and its tasks
    in a file called sink.py."""
    home = tmp_path / "project"
    for name in ("producer", "workers", "sink"):
        (home / name).mkdir(parents=True)
        (home / name / "__init__.py").write_text(DECOY.format(name=name))
        (home / name / "__main__.py").write_text(DECOY.format(name=name))
    (home / "sink.py").write_text(TASKS)
    (home / "in.jsonl").write_text("".join(f"{i}\n" for i in range(50)))
    return home


def redpool_in(
    home: Path, *args: str, safe_path: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """The redpool command run from the user's directory: on sys.path (the worst case), or
    with ``safe_path`` not, as for the ``redpool`` console script."""
    flags = ["-P"] if safe_path else []
    return subprocess.run(
        [sys.executable, *flags, "-c", "from redpool.cli import main; main()", *args],
        cwd=home,
        env=env(),
        capture_output=True,
        timeout=120,
    )


def test_redpool_run_from_a_directory_with_its_own_role_packages(tmp_path: Path) -> None:
    home = user_directory(tmp_path)
    done = redpool_in(
        home,
        *("run", "--tasks", "./sink.py", "--task", "double", "--input", "in.jsonl"),
        *("--output", "out.jsonl", "--processes", "2"),
    )
    assert done.returncode == 0, done.stderr
    assert sorted(r["value"] for r in read_results(home / "out.jsonl")) == [
        2 * i for i in range(50)
    ]


def test_redpool_worker_from_a_directory_with_its_own_role_packages(
    redis_server: RedisServer, pipeline: str, tmp_path: Path
) -> None:
    home = user_directory(tmp_path)
    common = ("--redis", redis_server.url, "--pipeline", pipeline)
    produced = redpool_in(home, "produce", *common, "--task", "double", "--input", "in.jsonl")
    assert produced.returncode == 0, produced.stderr
    worker = redpool_in(home, "worker", *common, "--tasks", "./sink.py", "--exit-when-done")
    assert worker.returncode == 0, worker.stderr
    sunk = redpool_in(home, "sink", *common, "--output", "out.jsonl")
    assert sunk.returncode == 0 and b"50 result(s): 50 ok" in sunk.stderr, sunk.stderr


def test_a_tasks_file_never_replaces_a_loaded_module(tmp_path: Path) -> None:
    """A tasks file named like a module already loaded (here the standard library's json) is
    refused in one line, instead of silently replacing that module."""
    home = user_directory(tmp_path)
    (home / "json.py").write_text(TASKS)
    done = redpool_in(
        home, "worker", "--tasks", "./json.py", "--wait-for-redis", "0", safe_path=True
    )
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1, err
    assert "would replace the module 'json'" in err
