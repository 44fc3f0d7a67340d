"""A local HTTP receiver for ``redpool sink --post``: records every POST and answers each as
the test's plan says (accept, fail with a status, reset the connection, or answer late); and
the steps the --post tests share."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import redis

from tests.procs import ROOT, Host, env, redpool

OK, RESET, SLOW = "ok", "reset", "slow"
"""Plan actions besides an HTTP status given as its number ("503", "429 1" = with
Retry-After: 1)."""

Plan = Callable[[int, str], str]
"""(request number from 1, Idempotency-Key) -> action."""


@dataclass(frozen=True)
class Received:
    number: int
    key: str
    rerun: str | None
    content_type: str
    body: bytes
    status: int
    """What it was answered: 0 for a reset or a late answer the sender gave up on."""
    at: float

    def json(self) -> dict[str, Any]:
        value = orjson.loads(self.body)
        assert isinstance(value, dict)
        return value


class Receiver:
    """The server runs in threads of its own (ThreadingHTTPServer) until `close`."""

    def __init__(self, plan: Plan, slow_seconds: float = 1.5) -> None:
        self.plan = plan
        self.slow_seconds = slow_seconds
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.closing = threading.Event()
        """Set at close: a late answer stops waiting."""
        handler = _handler_for(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/results"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def record(self, key: str, rerun: str | None, ctype: str, body: bytes) -> tuple[int, str]:
        with self._lock:
            number = len(self.received) + 1
            action = self.plan(number, key)
            status = int(action.split()[0]) if action[0].isdigit() else 200
            if action in (RESET, SLOW):
                status = 0
            self.received.append(
                Received(number, key, rerun, ctype, body, status, time.monotonic())
            )
        return number, action

    def count(self, status: int) -> int:
        with self._lock:
            return sum(r.status == status for r in self.received)

    def accepted(self) -> list[Received]:
        """The POSTs answered with a 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def accepted_ids(self) -> Counter[str]:
        return Counter(str(r.json()["id"]) for r in self.accepted())

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiving(plan: Plan, slow_seconds: float = 1.5) -> Iterator[Receiver]:
    receiver = Receiver(plan, slow_seconds)
    try:
        yield receiver
    finally:
        receiver.close()


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            _, action = receiver.record(
                self.headers.get("Idempotency-Key", ""),
                self.headers.get("X-Redpool-Rerun"),
                self.headers.get("Content-Type", ""),
                body,
            )
            if action == RESET:  # an RST, not a polite close: SO_LINGER 0
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            if action == SLOW:  # the fault itself: answer after the sender's timeout
                receiver.closing.wait(receiver.slow_seconds)
                self._answer(200, {})
                return
            status, *after = action.split() if action != OK else ["200"]
            self._answer(int(status), {"Retry-After": after[0]} if after else {})

        def _answer(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what the test asserts

    return Handler


N = 40
"""Results a test sends, unless it says."""


def submit(url: str, pipeline: str, tmp_path: Path, n: int = N) -> str:
    """``add(i, i)`` for i in 0..n-1, run to the end by a worker host: every result waits in
    Redis for the sink. Returns the producer's id (ids are ``<producer>-<i+1>``)."""
    host = Host(url, pipeline, "--exit-when-done", log=tmp_path / "worker.log")
    lines = b"".join(b"[%d, %d]\n" % (i, i) for i in range(n))
    produced = redpool(
        *("produce", "--redis", url, "--pipeline", pipeline, "--task", "add"),
        *("--chunksize", "1"),
        input=lines,
    )
    assert produced.returncode == 0, produced.stderr
    assert host.wait() == 0, host.output()
    producers = redis.Redis.from_url(url).hkeys(f"redpool:{{{pipeline}}}:producers")
    assert len(producers) == 1, producers
    producer = producers[0]
    return producer.decode() if isinstance(producer, bytes) else str(producer)


def post_args(url: str, pipeline: str, receiver: Receiver, *extra: str) -> list[str]:
    return [
        *("sink", "--redis", url, "--pipeline", pipeline, "--post", receiver.url),
        *("--post-timeout", "0.5", *extra),
    ]


def assert_every_result_accepted(receiver: Receiver, producer: str, n: int = N) -> None:
    """Each id got a 2xx at least once, and every accepted body is that id's result."""
    accepted = receiver.accepted()
    ids = {f"{producer}-{i + 1}" for i in range(n)}
    assert set(receiver.accepted_ids()) == ids
    for got in accepted:
        body = got.json()
        i = int(body["id"].rsplit("-", 1)[1]) - 1
        assert body["ok"] is True and body["value"] == 2 * i, body
        assert got.key == body["id"] and got.content_type == "application/json"
        assert got.rerun is None


def start_posting(
    url: str, pipeline: str, receiver: Receiver, log: Path
) -> subprocess.Popen[bytes]:
    """``redpool sink --post`` in the background, its stderr to ``log``."""
    with log.open("wb") as err:  # the child holds its own copy
        return subprocess.Popen(
            [sys.executable, "-P", "-m", "redpool", *post_args(url, pipeline, receiver)],
            cwd=ROOT,
            env=env(),
            stderr=err,
        )
