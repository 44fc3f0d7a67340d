"""A private Redis for ``redpool run``: redis-server in a temp dir, else fakeredis over TCP.

The demo must run on a fresh machine with nothing but Python; a real redis-server is used
when it is on PATH because it is faster and is what production runs.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redpool.connection import TRANSIENT, new_client
from redpool.errors import ConfigError
from redpool.settings import RedisSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def embedded_redis() -> Iterator[str]:
    """Yields the URL of a Redis that exists only for the duration of the block."""
    exe = shutil.which("redis-server")
    if exe:
        with _redis_server(exe) as url:
            yield url
    else:
        with _fake_server() as url:
            yield url


@contextmanager
def _redis_server(exe: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="redpool-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                tmp,
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            _wait_for(url, proc)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@contextmanager
def _fake_server() -> Iterator[str]:
    from fakeredis import TcpFakeServer  # only needed where redis-server is missing

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()
        server.server_close()


def _wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    client = new_client(RedisSettings(url))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"redis-server exited at start (code {proc.returncode})")
        try:
            client.ping()
            return
        except TRANSIENT:
            time.sleep(0.02)
    raise ConfigError("redis-server did not answer within 10 s")
