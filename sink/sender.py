"""``redpool sink --post URL``: each result as an HTTP POST, acknowledged only after a 2xx.

A `Poster` is a sink handler and its flush: the handler queues one POST per result on a
bounded pool of sender threads, and the flush waits for every POST of the batch before the
sink acknowledges it. A sink killed mid-batch leaves the batch in ``sinking``, and the next
sink sends it again: at-least-once, with the result's id in ``Idempotency-Key`` so the
receiver can keep the first copy and answer 2xx to the others.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3

from redpool.answers import ResultEnvelope
from redpool.connection import safe_url
from redpool.errors import OutputError, RedpoolError
from redpool.sink.post import RETRIED, PostSettings, headers_for, retry_after

log = logging.getLogger("redpool.sink")


class Unsent(RedpoolError):
    """The sink was told to stop while results of its batch were still unsent: the batch stays
    unacknowledged, and the next sink sends it (again, for those that were sent)."""


class Refused(OutputError):
    """The receiver refused a result (a 4xx but 408 and 429) every time it was tried."""


class Poster:
    """A sink handler that POSTs each result (`__call__`) and a flush that waits until every
    POST of the batch got a 2xx (`flush`): only then does the sink acknowledge the batch.

    Connection errors, timeouts, 408, 429 and 5xx are retried for ever, with exponential
    backoff and jitter (so senders that failed together do not come back together), or after
    what Retry-After says. A refusal (any other status) is tried `PostSettings.refused_tries`
    times, then `flush` raises `Refused`. Once one result is refused, or `stopping` is set (a
    signal handler sets it), no new try starts; the tries in flight finish."""

    def __init__(self, settings: PostSettings) -> None:
        self.settings = settings
        self.stopping = False
        self.keep_lease: Callable[[], None] = lambda: None
        """Called while `flush` waits (the sink's `keep_lease`): a batch can wait on a receiver
        that is down for longer than the sink's lease."""
        self._halted = False
        self._pending: list[Future[bool]] = []
        self._warned = 0.0
        self._warn_lock = threading.Lock()
        parts = urlsplit(settings.url)
        self.shown = safe_url(settings.url)
        """The URL for messages: never its password."""
        self._url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._auth: dict[str, str] = {}
        if parts.username is not None:  # urllib3 sends no credentials a URL holds: we do
            userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._auth = dict(urllib3.util.make_headers(basic_auth=userinfo))
        self._http = urllib3.PoolManager(
            maxsize=settings.concurrency,
            block=True,
            retries=False,
            timeout=urllib3.Timeout(connect=settings.timeout, read=settings.timeout),
        )
        self._senders = ThreadPoolExecutor(settings.concurrency, "redpool-post")

    def __call__(self, result: ResultEnvelope) -> None:
        headers = {**headers_for(result), **self._auth}
        self._pending.append(self._senders.submit(self._send, result.raw, headers))

    def flush(self) -> None:
        """Wait for every POST queued since the last flush, keeping the sink's lease. Raises
        `Refused` when the receiver refused one, `Unsent` when told to stop before all were
        sent; either way after the POSTs in flight finished, and the batch is not acked."""
        pending, self._pending = self._pending, []
        while wait(pending, timeout=0.2).not_done:
            self.keep_lease()
        sent = [future.result() for future in pending]  # raises the first Refused
        if not all(sent):
            raise Unsent(
                f"stopped with {sent.count(False)} of {len(sent)} result(s) of the batch not "
                f"yet accepted by {self.shown}; they stay in Redis for the next sink"
            )

    def close(self) -> None:
        """Stop starting tries, wait for those in flight, drop the connections."""
        self.stopping = True
        self._senders.shutdown(wait=True, cancel_futures=True)
        self._http.clear()

    def _send(self, body: bytes, headers: dict[str, str]) -> bool:
        """POST one result until a 2xx (True); False when stopped first. A sender thread."""
        tries = refusals = 0
        while not (self.stopping or self._halted):
            tries += 1
            try:
                response = self._http.request(
                    "POST", self._url, body=body, headers=headers, redirect=False
                )
            except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out, TLS
                why, asked = _describe(exc), None
            else:
                status = response.status
                if 200 <= status < 300:
                    return True
                why = f"{status} {response.reason or ''}".strip()
                asked = retry_after(response.headers.get("Retry-After"))
                if status < 500 and status not in RETRIED:
                    refusals += 1
                    if refusals >= self.settings.refused_tries:
                        self._halted = True
                        raise Refused(
                            f"{self.shown} refused result {headers['Idempotency-Key']} "
                            f"{refusals} time(s) ({why}); the sink stopped, and the result "
                            "and its batch stay in Redis, unacknowledged, for the next sink"
                        )
            delay = asked if asked is not None else self._backoff(tries)
            self._report(headers["Idempotency-Key"], why, tries, delay)
            if not self._pause(delay):
                break
        return False

    def _backoff(self, tries: int) -> float:
        """Exponential, capped, and jittered over its upper half."""
        ceiling = min(self.settings.max_backoff, self.settings.backoff * 2 ** min(tries - 1, 30))
        return random.uniform(ceiling / 2, ceiling)

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless told to stop (a flag, polled: a signal handler only sets
        it); False when stopped."""
        deadline = time.monotonic() + seconds
        while not (self.stopping or self._halted):
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))
        return False

    def _report(self, key: str, why: str, tries: int, delay: float) -> None:
        """A failed try: a warning at most every 5 s (a receiver that is down fails every
        sender at once), the rest at info level."""
        with self._warn_lock:
            now = time.monotonic()
            loud = now - self._warned >= 5
            if loud:
                self._warned = now
        log.log(
            logging.WARNING if loud else logging.INFO,
            "POST of result %s to %s failed (%s, try %d); retrying in %.1f s",
            key,
            self.shown,
            why,
            tries,
            delay,
        )


def _describe(exc: urllib3.exceptions.HTTPError) -> str:
    """A failed try in a few words: urllib3 nests the cause (reset, refused) inside."""
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}"[:200]
