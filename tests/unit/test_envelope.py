"""Envelopes: what parses, what is refused and why, and what a person reads."""

from __future__ import annotations

import orjson
import pytest

from redpool.envelope import (
    MAX_CHUNK,
    as_rerun,
    encode_listed,
    encode_run,
    encode_run_json,
    encode_task,
    ids_of,
    parse_task,
    parse_unit,
    read_item,
    split_at,
    tasks_in,
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


def test_ids_are_read_from_whatever_can_be_read() -> None:
    """A broken element's tasks still get answers under their ids, whatever its shape."""
    assert ids_of(b'{"id": "x", "task": 3, "producer": "p"}') == (["x"], None, "p")
    assert ids_of(b'{"n":2,"task":"t","producer":"p","first":7,"args":[[1],[2]]}') == (
        ["p-7", "p-8"],
        "t",
        "p",
    )
    assert ids_of(b'{"n":2,"task":"t","items":[["a",[]],[3,[]],"junk"]}') == (["a"], "t", None)
    assert ids_of(b"garbage") == ([], None, None)
    assert ids_of(b"[]") == ([], None, None)


def test_a_run_holds_ids_by_number_and_cuts_into_runs() -> None:
    raw = encode_run("t", "p", 10, [[1], [2], [3]])
    assert orjson.loads(raw) == {
        "n": 3,
        "task": "t",
        "producer": "p",
        "first": 10,
        "args": [[1], [2], [3]],
    }
    assert tasks_in(raw) == 3
    unit = parse_unit(raw)
    assert unit.listed() == [["p-10", [1]], ["p-11", [2]], ["p-12", [3]]]
    assert encode_run_json("t", "p", 10, [b"[1]", b"[2]", b"[3]"]) == raw
    kept, back = split_at([encode_task("s", "t", [0], {}), raw], 2)
    assert parse_unit(kept[1]).listed() == [["p-10", [1]]]
    assert [parse_unit(b).listed() for b in back] == [[["p-11", [2]], ["p-12", [3]]]]
    assert split_at([raw], 0) == ([], [raw]) and split_at([raw], 3) == ([raw], [])


def test_a_listed_chunk_cuts_into_listed_chunks() -> None:
    raw = encode_listed("t", None, [["a", [1]], ["b", [2], {"k": 1}], ["c", [3], {}, 2]])
    kept, back = split_at([raw], 1)
    assert parse_unit(kept[0]).items == [["a", [1]]]
    assert parse_unit(back[0]).items == [["b", [2], {"k": 1}], ["c", [3], {}, 2]]
    assert read_item(["c", [3], {}, 2]) == ("c", [3], {}, 2)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"n":1,"task":"t","first":1,"args":[[1]]}', "'producer'"),
        (b'{"n":1,"task":"t","producer":"p","first":-1,"args":[[1]]}', "'first'"),
        (b'{"n":1,"task":"t","producer":"p","first":1,"args":{}}', "'args'"),
        (b'{"n":1,"task":"t","items":{}}', "'items'"),
        (b'{"n":1,"task":7,"items":[]}', "'task'"),
    ],
)
def test_bad_chunks_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_unit(raw)


def test_a_chunk_over_the_limit_is_refused() -> None:
    raw = encode_listed("t", "p", [[f"i{n}", []] for n in range(MAX_CHUNK + 1)])
    with pytest.raises(PayloadError, match="exceeds the"):
        parse_unit(raw)


def test_a_rerun_counts_up_starts_its_attempts_again_and_keeps_other_fields() -> None:
    raw = encode_task("i", "t", [1], {"k": 2}, producer="p", attempts=3)
    once = orjson.loads(as_rerun(raw))
    assert once["rerun"] == 1 and "attempts" not in once
    assert {k: v for k, v in once.items() if k != "rerun"} == {
        k: v for k, v in orjson.loads(raw).items() if k != "attempts"
    }
    assert orjson.loads(as_rerun(as_rerun(raw)))["rerun"] == 2


def test_big_integers_survive_both_ways() -> None:
    """orjson alone would refuse them on the way out and round them on the way in."""
    from redpool import codec

    big = [2**64 + 1, -(2**63) - 1, 10**30]
    raw = encode_task("i", "t", big, {"k": 2**70})
    env = parse_task(raw)
    assert env.args == big and env.kwargs == {"k": 2**70}
    assert codec.loads(b"[1, 2.5]") == [1, 2.5]
