"""The codec speaks one dialect: the fast path and the exact path agree on every value."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Any

import pytest

from redpool import codec

BIG = 2**64  # sends a value down the exact (standard library) path


class Colour(enum.Enum):
    RED = "red"


class WithNaN(enum.Enum):
    BAD = float("nan")


@dataclasses.dataclass
class Point:
    x: float
    y: int


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        [1.0, -float("inf")],
        {"deep": [{"x": float("nan")}]},
        {1, 2},
        object(),
        "lone \ud800 surrogate",
        {1: 2},
        {(1, 2): 3},
        Point(float("nan"), 1),
        [Colour.RED, WithNaN.BAD],
    ],
    ids=[
        "nan",
        "inf",
        "-inf in list",
        "nested nan",
        "set",
        "object",
        "surrogate",
        "int key",
        "tuple key",
        "nan in dataclass",
        "nan in enum",
    ],
)
def test_both_paths_refuse_what_json_cannot_hold(value: Any) -> None:
    with pytest.raises(codec.NotJSON):
        codec.dumps(value)
    with pytest.raises(codec.NotJSON):
        codec.dumps([BIG, value])


def test_nesting_deeper_than_the_encoder_allows_is_refused_not_crashed() -> None:
    deep: Any = [1]
    for _ in range(300):
        deep = [deep]
    with pytest.raises(codec.NotJSON):
        codec.dumps(deep)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (datetime.datetime(2026, 1, 2, 3, 4, 5), '"2026-01-02T03:04:05"'),
        (
            datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
            '"2026-01-02T00:00:00+00:00"',
        ),
        (datetime.date(2026, 1, 2), '"2026-01-02"'),
        (uuid.UUID(int=1), '"00000000-0000-0000-0000-000000000001"'),
        (Colour.RED, '"red"'),
        (Point(1, 2), '{"x":1,"y":2}'),
        (None, "null"),
        ([None, 1.5], "[null,1.5]"),
    ],
)
def test_both_paths_write_the_same_json(value: Any, written: str) -> None:
    assert codec.dumps(value) == written.encode()
    assert codec.dumps([BIG, value]) == f"[{BIG},{written}]".encode()


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"[Infinity]", b'"\\ud800"', b"[1,", b"\xff", b"1e400"],
    ids=["NaN", "Infinity", "lone surrogate", "truncated", "not UTF-8", "overflow"],
)
def test_both_paths_refuse_what_is_not_json(raw: bytes) -> None:
    with pytest.raises(codec.JSONDecodeError):
        codec.loads(raw)
    with pytest.raises(codec.JSONDecodeError):
        codec.loads(b"[%d, %s]" % (BIG, raw))


def test_big_integers_are_exact_both_ways() -> None:
    assert codec.loads(codec.dumps([BIG, -(2**70), 10**30])) == [BIG, -(2**70), 10**30]
    assert codec.loads(b"[1, 2.5]") == [1, 2.5]
