"""A private redis-server for tests: free port, temp dir, can be stopped and restarted.

Never the machine's own Redis on the standard port: that one is not ours to stop or flush.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest
import redis

from redpool.embedded import free_port

REQUIRED = os.environ.get("REDPOOL_REQUIRE_REDIS") == "1" or os.environ.get("CI") == "true"


def unavailable(what: str) -> NoReturn:
    """A tool a test needs is missing: skip locally, fail in CI (dramatiq: raise if CI else
    skip), so a green CI run can never hide tests that did not run."""
    if REQUIRED:
        pytest.fail(f"{what}, and CI requires these tests to run")
    pytest.skip(what)


def require_redis_server() -> str:
    """The redis-server binary."""
    exe = shutil.which("redis-server")
    if exe is None:
        unavailable("redis-server is not on PATH")
    return exe


class RedisServer:
    def __init__(
        self,
        directory: Path,
        appendonly: bool = False,
        bind: str = "127.0.0.1",
        *,
        port: int | None = None,
        config: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        """``config`` is a config file to start from (a sentinel's, which Redis requires and
        rewrites); ``extra`` are more ``--option value`` arguments (cluster mode, replicaof).
        ``port`` lets a caller that needs several ports pick them all distinct at once."""
        self.exe = require_redis_server()
        self.dir = directory
        self.port = free_port() if port is None else port
        self.appendonly = appendonly
        self.bind = bind
        self.config = config
        self.extra = tuple(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10)

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.exe,
            *([str(self.config)] if self.config is not None else []),
            "--port",
            str(self.port),
            "--bind",
            *self.bind.split(),
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--logfile",
            "redis.log",
            "--daemonize",
            "no",
        ]
        if self.bind != "127.0.0.1":  # our own test host's veth, never a real network
            args += ["--protected-mode", "no"]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_timeout=1)
        while True:
            try:
                client.ping()
                return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """A clean stop: SHUTDOWN writes the AOF out before the process exits."""
        if self.proc is None:
            return
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(port=self.port, socket_timeout=5).shutdown(nosave=not self.appendonly)
        self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None
