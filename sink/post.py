"""What ``redpool sink --post URL`` sends and how patiently: its settings, the headers of a
result's POST, and how long a Retry-After asks to wait. The sender threads are in
`redpool.sink.sender`, which alone imports the HTTP client (the CLI imports these settings
for every command)."""

from __future__ import annotations

import email.utils
import hashlib
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from redpool.answers import ResultEnvelope
from redpool.connection import safe_url
from redpool.settings import require, require_range

RETRIED = frozenset({408, 429})
"""4xx answers that say "later", retried like a 5xx; any other 4xx (and a 3xx: a POST is not
followed through a redirect) is a refusal."""
MAX_RETRY_AFTER = 300.0
"""The longest Retry-After honoured, in seconds: a receiver's "come back tomorrow" (or a
broken header) must not stall the sink for longer than an outage it would ride out anyway."""
_PLAIN_HEADER = re.compile(r"[!-~]+")
"""An id made of visible ASCII goes in a header as it is; any other is percent-encoded (a
header cannot carry a newline, and HTTP/1.1 header values are Latin-1)."""


@dataclass(frozen=True)
class PostSettings:
    """Where results are POSTed and how patiently."""

    url: str
    concurrency: int = 8
    """POSTs in flight at once (sender threads)."""
    timeout: float = 10.0
    """Seconds to connect, and again to wait for the answer, before a try counts as failed."""
    backoff: float = 0.2
    """Seconds before the first retry, doubled for each next one (with jitter)."""
    max_backoff: float = 30.0
    """The longest wait between tries: a receiver that is down is retried for ever, this often."""
    refused_tries: int = 3
    """Tries of a result the receiver refuses (a 4xx but 408 and 429), in case the refusal was
    a receiver half-deployed; then the sink stops (exit 1), the batch unacknowledged."""

    def __post_init__(self) -> None:
        try:
            parts = urlsplit(self.url)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = urlsplit(""), False
        require(
            parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok,
            "post",
            f"must be an http:// or https:// URL with a host, not {safe_url(self.url)!r}",
        )
        require_range("concurrency", self.concurrency, 1, 256)
        require(self.timeout > 0, "post_timeout", f"must be more than 0 s, not {self.timeout:g}")
        require(self.backoff > 0, "backoff", f"must be more than 0 s, not {self.backoff:g}")
        require_range("refused_tries", self.refused_tries, 1, 100)


def headers_for(result: ResultEnvelope) -> dict[str, str]:
    """Content-Type, ``Idempotency-Key`` (the result's id; a result with none, a stray pushed
    by hand, gets the SHA-256 of its line, which is the same every time it is sent) and, for
    the K-th re-run of an id by ``dead retry``, ``X-Redpool-Rerun: K``: a re-run's result is a
    new result under the same id, so a receiver de-duplicates on the key and the re-run."""
    body = result.body
    task_id = body.get("id")
    if isinstance(task_id, str) and task_id:
        key = task_id if _PLAIN_HEADER.fullmatch(task_id) else quote(task_id, safe="")
    else:
        key = "sha256:" + hashlib.sha256(result.raw).hexdigest()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    rerun = body.get("rerun")
    if type(rerun) is int and rerun > 0:
        headers["X-Redpool-Rerun"] = str(rerun)
    return headers


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (a number, or an HTTP date), at most
    `MAX_RETRY_AFTER`; None when there is none or it cannot be read."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(0.0, when - (time.time() if now is None else now)), MAX_RETRY_AFTER)
