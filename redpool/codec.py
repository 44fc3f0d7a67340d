"""JSON in and out: orjson on the hot path, the standard library where orjson would be wrong.

orjson is the fastest codec for Python, but it refuses integers beyond 64 bits when encoding
and silently turns them into floats when decoding. Big integers are ordinary in this field
(factorising, hashes, ids), so those payloads take the exact, slower path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

JSONDecodeError = ValueError
"""What ``loads`` raises (orjson's and json's decode errors are both ValueErrors)."""

_LONG_NUMBER = re.compile(rb"\d{19}")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; raises TypeError for values JSON cannot hold."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except ValueError as exc:
        raise TypeError(str(exc)) from None


def loads(raw: bytes | str) -> Any:
    """Parse JSON; integers of any size come back exact."""
    data = raw.encode() if isinstance(raw, str) else raw
    if _LONG_NUMBER.search(data):
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
    return orjson.loads(data)
