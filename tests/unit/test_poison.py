"""Poison payloads: elements that parse, yet cannot be shown, read back or written again, end
dead with an error answer under every id that can be read, and never raise out of a child's
executor or a reaper's give-back (either would die on them again on every restart)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from redpool import task
from redpool.answers import Outcome
from redpool.envelope import MAX_PAYLOAD
from redpool.registry import Registry
from redpool.workers.execute import Executor
from redpool.workers.giveback import ALL, Loss, sorter
from redpool.workers.slots import Slot


class Unsayable(Exception):
    """An exception that cannot say what it is: its error answer cannot be written."""

    def __str__(self) -> str:
        raise RuntimeError("no words")


@task
def echo(x: object) -> object:
    return x


@task
def unsayable(x: object) -> object:
    raise Unsayable


REG = Registry([echo, unsayable])
DEEP = 1010
"""Nesting the JSON parser takes and repr cannot show."""


def nested(depth: int, inner: bytes = b"") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def run(*payloads: bytes) -> Outcome:
    executor = Executor(REG, "w", Slot())
    executor.pace = {t.name: 0.0 for t in REG}
    return executor.run_batch(list(payloads))


def answers(out: Outcome) -> dict[str, dict[str, Any]]:
    """Every answer in the outcome by id, whatever the shape of its element."""
    found: dict[str, dict[str, Any]] = {}
    for element in out.results:
        body = orjson.loads(element)
        for line in body.get("results", [body]):
            assert line["id"] not in found
            found[line["id"]] = line
    return found


GOOD = b'{"id":"good","task":"echo","args":[1],"producer":"p"}'
POISON = {
    "run nested past repr": b'{"n":2,"task":"echo","producer":"p","first":1,"args":[['
    + nested(DEEP)
    + b"],[1]]}",
    "listed nested past repr": b'{"n":2,"task":"echo","producer":"p","items":[["p-1",['
    + nested(DEEP)
    + b']],["p-2",[1]]]}',
    "unknown task nested past repr": b'{"n":2,"task":"nope","producer":"p","items":[["p-1",['
    + nested(DEEP)
    + b']],["p-2",[1]]]}',
    "an item nested past repr": b'{"n":2,"task":"echo","producer":"p","items":['
    + nested(DEEP, b'"x"')
    + b',["p-1",[1]]]}',
}


@pytest.mark.parametrize("raw", POISON.values(), ids=POISON.keys())
def test_a_chunk_nested_past_repr_is_answered_and_the_batch_goes_on(raw: bytes) -> None:
    out = run(raw, GOOD)
    got = answers(out)
    assert got["good"]["ok"] is True
    assert "p-1" in got and out.dead
    assert len(got) == out.ok + out.failed


SINGLES = {
    "lone surrogate beside a big integer": b'{"id":"s1","task":"echo","args":["\\ud800",'
    b"12345678901234567890123],"
    b'"producer":"p"}',
    "NaN beside a 19-digit integer": b'{"id":"s1","task":"echo","args":[NaN,1234567890123456789],'
    b'"producer":"p"}',
    "nested too deep beside a big integer": b'{"id":"s1","task":"echo","args":['
    + nested(2000, b"12345678901234567890123")
    + b'],"producer":"p"}',
    "over the size limit": b'{"id":"s1","task":"echo","args":["'
    + b"x" * (MAX_PAYLOAD + 1)
    + b'"],"kwargs":{},"producer":"p"}',
}


@pytest.mark.parametrize("raw", SINGLES.values(), ids=SINGLES.keys())
def test_an_unreadable_single_task_is_answered_under_its_id(raw: bytes) -> None:
    """Refused as a whole, yet its id, name and producer are read: the answer counts toward
    the end of the run, which would otherwise wait for it for ever."""
    out = run(raw, GOOD)
    got = answers(out)
    assert got["s1"]["ok"] is False and got["s1"]["producer"] == "p"
    assert got["s1"]["task"] == "echo" and got["good"]["ok"] is True
    assert len(out.dead) == 1 and orjson.loads(out.dead[0])["id"] == "s1"


def test_a_batch_that_raises_is_run_again_and_only_its_bad_element_is_dead() -> None:
    """An error that raises as it is written down, what no one foresaw: not a child's death
    (and the same batch again after its restart), but an error answer for that task alone."""
    bad = b'{"id":"bad","task":"unsayable","args":[1],"producer":"p"}'
    out = run(GOOD, bad, GOOD.replace(b"good", b"after"))
    got = answers(out)
    assert got["good"]["ok"] is True and got["after"]["ok"] is True
    assert got["bad"]["ok"] is False and "RuntimeError" in got["bad"]["error"]["message"]
    assert [orjson.loads(d)["id"] for d in out.dead] == ["bad"]
    assert out.ok == 2 and out.failed == 1


def test_a_reaper_gives_back_a_chunk_with_an_item_nested_past_repr() -> None:
    """A dead host's poison chunk, charged by every reaper that finds it: none may die."""
    raw = POISON["an item nested past repr"]
    returned = sorter(Loss("host lost", charge=ALL), REG, "reaper")([raw, GOOD])
    assert returned.dead
    assert all(isinstance(orjson.loads(d), dict) for d in returned.dead)
