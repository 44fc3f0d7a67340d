"""A local HTTP server that keeps what is POSTed to it: the far end of the stream consumer
recipe (examples/forward.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver(ThreadingHTTPServer):
    """Serves from a thread at once; keeps the JSON body of every POST, in the order they
    came, and answers each with ``status``. ``close()`` stops it."""

    def __init__(self, status: int = 204) -> None:
        self.bodies: list[Any] = []
        self.status = status
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/results"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test reads what was posted, not a log on stderr."""
