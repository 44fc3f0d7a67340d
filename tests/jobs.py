"""Tasks the tests run in real worker processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from redpool import task


@task
def echo(x: object) -> object:
    return x


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def slow_echo(x: object, seconds: float = 0.005) -> object:
    time.sleep(seconds)
    return x


@task
def boom(x: object) -> None:
    raise ValueError(f"boom {x}")


@task(retries=3, backoff=0.01)
def flaky(x: int, marker_dir: str, fails: int = 2) -> int:
    """Fails ``fails`` times per x (counted in files), then succeeds: retries in action."""
    marker = Path(marker_dir) / f"flaky-{x}"
    count = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(count + 1))
    if count < fails:
        raise RuntimeError(f"transient failure {count + 1} of {x}")
    return x


@task
def exit_hard(x: object) -> None:
    """Takes its process down with it, as a segfault or an OOM kill would."""
    os._exit(13)


@task(timeout=0.5)
def hang(x: object) -> None:
    while True:
        time.sleep(0.05)


@task(timeout=0.5)
def hang_in_c(x: object) -> None:
    """Ignores the timeout: only killing its process stops it."""
    import signal

    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(3600)


@task
def not_json(x: object) -> object:
    return {1, 2, 3}


@task
def gate(x: object, path: str) -> object:
    """Holds its process until ``path`` exists: a task the test knows is running.

    Announces itself in ``path.running``: being in an inflight list only means taken, and a
    task taken but not yet started is (rightly) not charged an attempt when its process dies.
    """
    Path(path + ".running").touch()
    while not os.path.exists(path):
        time.sleep(0.005)
    return x


@task
def whoami(x: object) -> int:
    """The pid of the process that ran it."""
    return os.getpid()


@task
def power_of_ten(n: int) -> int:
    """10**n: past 4,300 digits Python will not write it as text."""
    return int(10**n)


@task
def big(size: int) -> str:
    """A result of ``size`` bytes: over a server's proto-max-bulk-len, its commit is refused."""
    return "x" * size


@task
def break_commit(x: object) -> object:
    """Returns, but leaves its process unable to commit: the child dies at its commit, outside
    any task, as one would on a Redis error that is no outage. Its replacement, forked from
    the supervisor, is sound until it runs this task again."""
    from redpool.pipeline import Pipeline

    def die(*_args: object, **_kwargs: object) -> int:
        os._exit(7)

    Pipeline.commit = die  # type: ignore[method-assign]
    return x
