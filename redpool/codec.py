"""JSON in and out, one dialect: orjson on the hot path, the standard library where orjson
would be wrong, and the same answer from both.

The dialect is strict JSON (RFC 8259): no NaN or Infinity, no lone surrogates, integers of any
size kept exact. orjson refuses integers beyond 64 bits when encoding and turns them into floats
when decoding; big integers are ordinary in this field (factorising, hashes, ids), so payloads
holding them take the exact, slower path. Both paths write dates, times, UUIDs, enums and
dataclasses the same way, and both refuse everything else with `NotJSON`.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from typing import Any

import orjson

JSONDecodeError = ValueError
"""What ``loads`` raises (orjson's and json's decode errors are both ValueErrors)."""


class NotJSON(TypeError):
    """A value this dialect cannot write: NaN, a set, an object, a lone surrogate, nesting
    deeper than the encoder allows."""


# Digits -> "0", everything else -> " ": a run of 19 zeros is a number orjson may round.
# bytes.translate and a substring search cost a fraction of a regex on a typical envelope.
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _default(value: Any) -> Any:
    """The types both encoders write alike, beyond JSON's own."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise NotJSON(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; raises NotJSON for values the dialect cannot hold."""
    try:
        out = orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise NotJSON(str(exc)) from None
        return _dumps_exact(value)
    # orjson writes NaN and Infinity as null; look for them only where a null was written.
    if out.find(b"null") != -1:
        _check(value, strict_keys=False)
    return out


def dumps_checked(value: Any) -> bytes:
    """`dumps` for a container whose values the caller already passed through `check`: skips
    the search for NaN written as null, which on a chunk of answers with null values would
    cost a walk of the whole chunk."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise NotJSON(str(exc)) from None
        return _dumps_exact(value)


def check(value: Any) -> None:
    """Raise NotJSON unless ``value`` can be written: at once for a scalar, by writing it for
    anything else. Values checked so can then be written many at a time by `dumps_checked`."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise NotJSON("NaN and Infinity are not JSON")
    elif kind is not int and kind is not str and kind is not bool and value is not None:
        dumps(value)


def _dumps_exact(value: Any) -> bytes:
    # json writes int keys as strings and NaN in nested defaults unless told: check first
    _check(value, strict_keys=True)
    try:
        text = json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
        )
        return text.encode()
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
        raise NotJSON(str(exc)) from None


def _check(value: Any, *, strict_keys: bool) -> None:
    """Refuse NaN and Infinity anywhere in ``value``; with ``strict_keys``, also object keys
    that are not strings (orjson refuses them, json would quietly write them as strings). An
    explicit stack: no recursion limit to hit."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float:
            if not math.isfinite(item):
                raise NotJSON("NaN and Infinity are not JSON")
        elif isinstance(item, dict):
            if strict_keys and not all(isinstance(k, str) for k in item):
                raise NotJSON("object keys must be strings")
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, enum.Enum):
            stack.append(item.value)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.append(dataclasses.asdict(item))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes | str) -> Any:
    """Parse JSON; integers of any size come back exact. Raises ValueError."""
    data = raw.encode() if isinstance(raw, str) else raw
    if _LONG_RUN in data.translate(_DIGITS):
        return _loads_exact(data)
    return orjson.loads(data)


def validate(raw: bytes) -> None:
    """Raise ValueError unless ``raw`` is JSON in this dialect, without keeping the value.

    Cheaper than `loads` for text that is passed on as it is (``redpool produce`` input):
    orjson is exactly as strict (no NaN or Infinity, no lone surrogates), and a big integer
    it reads as a float is still valid JSON, so no exact parse is needed."""
    orjson.loads(raw)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a JSON number here")
    return value


def _loads_exact(data: bytes) -> Any:
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if b"\\u" in data:  # orjson refuses lone surrogates; so must this path
        try:
            _dumps_exact(value)
        except NotJSON as exc:
            raise ValueError(str(exc)) from None
    return value
