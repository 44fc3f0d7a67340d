"""Drive the real CLI in subprocesses, and check what a run left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent


def env() -> dict[str, str]:
    e = dict(os.environ)
    # no trailing separator: an empty entry would put the current directory on sys.path
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH")) if p)
    e.pop("REDIS_URL", None)
    return e


def redpool(
    *args: str, input: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "redpool", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        env=env(),
    )


def producing(url: str, pipeline: str, *extra: str) -> subprocess.Popen[bytes]:
    """``redpool produce --input -`` fed by the test through a pipe (see `feed`)."""
    return subprocess.Popen(
        [
            *(sys.executable, "-P", "-m", "redpool", "produce", "--redis", url),
            *("--pipeline", pipeline, "--input", "-", *extra),
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env(),
    )


def feed(proc: subprocess.Popen[bytes], lines: list[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
    proc.stdin.flush()


def error_line(done: subprocess.CompletedProcess[bytes], code: int = 1) -> str:
    """The one line a failed command printed: exit code ``code``, nothing on stdout, one line
    on stderr and no traceback. Returns that line without its newline."""
    err = done.stderr.decode(errors="replace")
    assert done.returncode == code, (done.args, done.returncode, err)
    assert done.stdout == b"" and err.count("\n") == 1 and "Traceback" not in err, (done.args, err)
    return err.removesuffix("\n")


STARTED: list[Host] = []
"""Every Host a test started: the conftest kills those still running after the test, so a
failed test leaves no worker behind to find the next server on its port."""


class Host:
    """``redpool worker`` as its own process group: one "host" we can kill whole."""

    def __init__(
        self,
        url: str,
        pipeline: str,
        *extra: str,
        log: Path,
        processes: int = 2,
        prefix: tuple[str, ...] = (),
        tasks: str = "tests.jobs",
    ) -> None:
        """``prefix`` runs it under another command: with ``ip netns exec NS`` it is a host
        on a network of its own. ``tasks`` is the module it loads (``examples.*`` for the
        recipes, found from the repository's root)."""
        self.log = log
        self.waited = False
        self._out = open(log, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-P",
                "-m",
                "redpool.workers",
                "--redis",
                url,
                "--pipeline",
                pipeline,
                "--tasks",
                tasks,
                "--processes",
                str(processes),
                *extra,
            ],
            cwd=ROOT,
            env=env(),
            stdout=self._out,
            stderr=self._out,
            start_new_session=True,
        )
        STARTED.append(self)

    def children(self) -> list[int]:
        """Pids of the worker children, from /proc."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill_host(self) -> None:
        """SIGKILL supervisor and children at once: a host losing power."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait(timeout=10)

    def wait(self, timeout: float = 120) -> int:
        """The exit code; the first call is the one whose caller judges it."""
        self.waited = True
        code = self.proc.wait(timeout=timeout)
        self._out.close()
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    """Wait on observable state with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def ids_in(raw: bytes | str) -> list[str]:
    """The task ids an element of the tasks list holds, whatever its shape."""
    from redpool.envelope import parse_unit

    return [
        str(item[0])
        for item in parse_unit(raw if isinstance(raw, bytes) else raw.encode()).listed()
    ]


def read_results(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def assert_exactly_once(results: list[dict[str, Any]], expected_ids: set[str]) -> None:
    counts = Counter(str(r["id"]) for r in results)
    dupes = {i: n for i, n in counts.items() if n > 1}
    assert not dupes, f"duplicated results: {list(dupes.items())[:5]}"
    missing = expected_ids - counts.keys()
    assert not missing, f"{len(missing)} ids have no result, e.g. {sorted(missing)[:5]}"


def assert_nothing_left(client: redis.Redis, pipeline: str) -> None:
    """No task, retry, in-flight record or unacknowledged result is left anywhere."""
    prefix = f"redpool:{{{pipeline}}}:"
    assert client.llen(prefix + "tasks") == 0
    assert client.zcard(prefix + "delayed") == 0
    assert client.llen(prefix + "results") == 0
    assert client.llen(prefix + "sinking") == 0
    held = list(
        client.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + "inflight:*")
    )
    assert held == [], f"in-flight records left: {held}"


def all_keys_in_prefix(client: redis.Redis, pipeline: str) -> list[bytes]:
    """Keys of this run outside its prefix (there must be none)."""
    prefix = f"redpool:{{{pipeline}}}:".encode()
    return [
        k
        for k in client.scan_iter(count=1000)
        if pipeline.encode() in k and not k.startswith(prefix)
    ]
