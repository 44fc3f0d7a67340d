"""Envelopes: what parses, what is refused and why, and what a person reads."""

from __future__ import annotations

import orjson
import pytest

from redpool.envelope import (
    encode_dead,
    encode_result,
    encode_task,
    error,
    parse_result,
    parse_task,
    salvage,
    with_attempts,
)
from redpool.errors import PayloadError


def test_a_task_round_trips_and_stays_readable_json() -> None:
    raw = encode_task("p-1", "add", [1, 2], {"c": "é"}, producer="p")
    assert orjson.loads(raw) == {
        "id": "p-1",
        "task": "add",
        "args": [1, 2],
        "kwargs": {"c": "é"},
        "producer": "p",
    }
    env = parse_task(raw)
    assert (env.id, env.task, env.args, env.kwargs, env.attempts, env.producer) == (
        "p-1",
        "add",
        [1, 2],
        {"c": "é"},
        0,
        "p",
    )
    assert env.raw == raw


def test_args_and_kwargs_are_optional() -> None:
    env = parse_task(b'{"id": "x", "task": "t"}')
    assert env.args == [] and env.kwargs == {}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"task": "t"}', "'id'"),
        (b'{"id": 5, "task": "t"}', "'id'"),
        (b'{"id": "x"}', "'task'"),
        (b'{"id": "x", "task": "t", "args": {}}', "'args'"),
        (b'{"id": "x", "task": "t", "kwargs": []}', "'kwargs'"),
        (b'{"id": "x", "task": "t", "attempts": -1}', "'attempts'"),
        (b'{"id": "x", "task": "t", "attempts": true}', "'attempts'"),
        (b'{"id": "x", "task": "t", "producer": 3}', "'producer'"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason) as info:
        parse_task(raw)
    assert info.value.raw == raw


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadError, match="exceeds"):
        parse_task(b'{"id": "x", "task": "t", "args": ["' + b"a" * 100 + b'"]}', max_size=50)


def test_salvage_reads_what_it_can() -> None:
    assert salvage(b'{"id": "x", "task": 3, "producer": "p"}') == ("x", None, "p")
    assert salvage(b"garbage") == (None, None, None)
    assert salvage(b"[]") == (None, None, None)


def test_with_attempts_keeps_other_fields() -> None:
    raw = encode_task("i", "t", [1], {}, producer="p")
    again = with_attempts(raw, 2)
    assert orjson.loads(again)["attempts"] == 2
    assert orjson.loads(with_attempts(again, 0)) == orjson.loads(raw)


def test_result_shapes() -> None:
    ok = orjson.loads(encode_result("i", "t", ok=True, value=[1], worker="w", ms=1.23456))
    assert ok == {"id": "i", "task": "t", "ok": True, "value": [1], "worker": "w", "ms": 1.235}
    bad = orjson.loads(encode_result("i", "t", ok=False, err=error("E", "m", "tb"), worker="w"))
    assert bad["error"] == {"type": "E", "message": "m", "traceback": "tb"}
    assert bad["ok"] is False
    with pytest.raises(TypeError):
        encode_result("i", "t", ok=True, value={1, 2})


def test_dead_letter_keeps_the_payload_and_truncates_huge_ones() -> None:
    letter = orjson.loads(encode_dead(b"garbage", "not JSON", worker="w"))
    assert letter["payload"] == "garbage" and letter["reason"] == "not JSON"
    huge = b"x" * (17 * 1024 * 1024)
    letter = orjson.loads(encode_dead(huge, "too big"))
    assert letter["truncated"] == len(huge) and len(letter["payload"]) < 10_000


def test_parse_result_is_lenient() -> None:
    assert parse_result(b"junk").id is None
    r = parse_result(encode_result("i", "t", ok=True, value=1, producer="p"))
    assert (r.id, r.ok, r.producer) == ("i", True, "p")


def test_big_integers_survive_both_ways() -> None:
    """orjson alone would refuse them on the way out and round them on the way in."""
    from redpool import codec

    big = [2**64 + 1, -(2**63) - 1, 10**30]
    raw = encode_task("i", "t", big, {"k": 2**70})
    env = parse_task(raw)
    assert env.args == big and env.kwargs == {"k": 2**70}
    assert codec.loads(encode_result("i", "t", ok=True, value=2**100))["value"] == 2**100
    assert codec.loads(b"[1, 2.5]") == [1, 2.5]
