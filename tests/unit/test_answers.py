"""Answers: what a worker writes for each task, and what the sink reads back."""

from __future__ import annotations

import orjson
import pytest

from redpool import codec
from redpool.answers import Answers, encode_dead, error, parse_result, parse_results, rejection


def single(value: object, producer: str | None = "p") -> bytes:
    answers = Answers("t", producer, "w")
    answers.value("i", value, 1.23456)
    return answers.element(single=True)


def test_result_shapes() -> None:
    ok = orjson.loads(single([1]))
    assert ok == {
        "id": "i",
        "task": "t",
        "ok": True,
        "value": [1],
        "ms": 1.234,
        "worker": "w",
        "producer": "p",
    }
    answers = Answers("t", None, "w")
    answers.error("i", error("E", "m", "tb"), 0.0, 2)
    bad = orjson.loads(answers.element(single=True))
    assert bad["error"] == {"type": "E", "message": "m", "traceback": "tb"}
    assert bad["ok"] is False and bad["attempts"] == 2 and "producer" not in bad
    for unwritable in ({1, 2}, float("nan"), [float("inf")]):
        with pytest.raises(TypeError):
            answers.value("i", unwritable, 0.0)


def test_a_chunk_of_answers_is_json_and_one_line_per_task() -> None:
    """The results element of a chunk parses as a whole, and the sink reads its lines
    without parsing them; each line is a whole result, as a single task's is."""
    answers = Answers("t", "p", "w")
    answers.value("a", {"x": 1}, 1.23456)
    answers.error("b", error("E", "m"), 2.0, 1)
    raw = answers.element(single=False)
    body = orjson.loads(raw)
    assert (body["n"], body["ok"], body["failed"]) == (2, 1, 1)
    read = parse_results(raw)
    assert (read.ok, read.failed, read.producer) == (1, 1, "p")
    lines = [orjson.loads(r.raw) for r in read.results()]
    shared = {"task": "t", "worker": "w", "producer": "p"}
    assert lines == [{**answer, **shared} for answer in body["results"]]
    assert [r.id for r in read.results()] == ["a", "b"]
    assert lines[0] == orjson.loads(single({"x": 1}, "p").replace(b'"id":"i"', b'"id":"a"'))


def test_dead_letter_keeps_the_payload_and_truncates_huge_ones() -> None:
    letter = orjson.loads(encode_dead(b"garbage", "not JSON", worker="w"))
    assert letter["payload"] == "garbage" and letter["reason"] == "not JSON"
    huge = b"x" * (17 * 1024 * 1024)
    letter = orjson.loads(encode_dead(huge, "too big"))
    assert letter["truncated"] == len(huge) and len(letter["payload"]) < 10_000


def test_parse_result_is_lenient() -> None:
    assert parse_result(b"junk") == (None, False, None)
    assert parse_result(single(1)) == ("i", True, "p")
    junk = parse_results(b'{"n":2,"not":"ours"}')
    assert junk.lines == [b'{"n":2,"not":"ours"}'] and junk.failed == 1


def test_a_run_answers_with_its_ids_and_escapes_ids_that_need_it() -> None:
    answers = Answers("t", "p", "w")
    answers.ran(7, "x", 0.5)
    weird = Answers("t", 'p"q', "w")
    weird.ran(7, None, 0.5)
    line = orjson.loads(parse_results(answers.element(single=False)).lines[0])
    assert line["id"] == "p-7" and line["value"] == "x"
    assert orjson.loads(parse_results(weird.element(single=False)).lines[0])["id"] == 'p"q-7'


def test_big_integers_in_answers_are_exact() -> None:
    assert codec.loads(single(2**100))["value"] == 2**100
    answers = Answers("t", "p", "w")
    answers.ran(1, -(2**70), 0.0)
    assert codec.loads(parse_results(answers.element(single=False)).lines[0])["value"] == -(2**70)


def test_a_broken_element_is_dead_once_and_answered_per_id() -> None:
    raw = b'{"n":2,"task":"t","producer":"p","first":1,"args":{}}'
    rejected = rejection(raw, "broken", "w")
    assert rejected.answered == 2 and orjson.loads(rejected.letter)["reason"] == "broken"
    read = parse_results(rejected.results[0])
    assert read.failed == 2 and [r.id for r in read.results()] == ["p-1", "p-2"]
