"""What ``redpool sink --post`` puts on each POST, how long it waits, and its sender threads
against a local receiver (no Redis)."""

from __future__ import annotations

import email.utils
import threading

import pytest

from redpool.answers import ResultEnvelope
from redpool.errors import SettingError
from redpool.sink.post import MAX_RETRY_AFTER, PostSettings, headers_for, retry_after
from redpool.sink.sender import Poster, Refused, Unsent
from tests.procs import wait_for
from tests.receiver import OK, receiving


def result(raw: bytes) -> ResultEnvelope:
    return ResultEnvelope(raw, None)


def test_headers_carry_the_id_and_the_rerun() -> None:
    """The id is the Idempotency-Key; a re-run says which one, a first run says nothing."""
    first = headers_for(result(b'{"id":"P-1","ok":true,"value":2}'))
    assert first == {"Content-Type": "application/json", "Idempotency-Key": "P-1"}
    rerun = headers_for(result(b'{"id":"P-1","ok":true,"value":2,"rerun":2}'))
    assert rerun["Idempotency-Key"] == "P-1" and rerun["X-Redpool-Rerun"] == "2"


def test_a_key_is_always_a_valid_header_and_the_same_every_time() -> None:
    """An id a header cannot carry is percent-encoded; a result with no id (a stray) is keyed
    by its line's hash, so a resend has the same key."""
    assert headers_for(result(b'{"id":"a b\\n\xc3\xa9"}'))["Idempotency-Key"] == "a%20b%0A%C3%A9"
    stray = headers_for(result(b"[1,2]"))["Idempotency-Key"]
    assert stray.startswith("sha256:") and stray == headers_for(result(b"[1,2]"))["Idempotency-Key"]


def test_retry_after_in_seconds_or_a_date_and_capped() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("99999") == MAX_RETRY_AFTER
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert retry_after(date, now=1_000_000) == 10.0
    assert retry_after(date, now=2_000_000) == 0.0


@pytest.mark.parametrize(
    ("url", "setting"),
    [("ftp://h/", "post"), ("http:///x", "post"), ("localhost:80", "post"), ("http://h", "")],
)
def test_post_url_must_be_http(url: str, setting: str) -> None:
    if not setting:
        assert PostSettings(url).url == url
        return
    with pytest.raises(SettingError) as caught:
        PostSettings(url)
    assert caught.value.setting == setting


def test_refused_result_raises_after_its_tries() -> None:
    """A 4xx (not 408 or 429) is tried `refused_tries` times, then flush raises, after the
    other POSTs of the batch were answered."""
    with receiving(lambda _n, key: "422" if key == "bad" else OK) as receiver:
        poster = Poster(PostSettings(receiver.url, backoff=0.01, refused_tries=2))
        try:
            for key in ("a", "bad", "b"):
                poster(result(b'{"id":"%s"}' % key.encode()))
            with pytest.raises(Refused, match="refused result bad 2 time"):
                poster.flush()
        finally:
            poster.close()
        assert [r.key for r in receiver.received].count("bad") == 2
        assert set(receiver.accepted_ids()) == {"a", "b"}


def test_stop_while_failing_leaves_the_batch_unsent() -> None:
    """Told to stop while the receiver answers 503: no more tries, flush raises `Unsent` (so
    the sink does not acknowledge), and the lease is kept while flush waits."""
    kept: list[int] = []
    raised: list[BaseException] = []

    def flush() -> None:
        try:
            poster.flush()
        except Unsent as exc:
            raised.append(exc)

    with receiving(lambda _n, _key: "503") as receiver:
        poster = Poster(PostSettings(receiver.url, backoff=0.05))
        poster.keep_lease = lambda: kept.append(1)
        try:
            poster(result(b'{"id":"a"}'))
            waiting = threading.Thread(target=flush)
            waiting.start()
            wait_for(lambda: receiver.count(503) >= 3 and len(kept) >= 2, what="tries")
            poster.stopping = True
            waiting.join(timeout=10)
        finally:
            poster.close()
        assert len(raised) == 1 and receiver.accepted() == []
