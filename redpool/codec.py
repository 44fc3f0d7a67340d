"""JSON in and out: orjson on the hot path, the standard library where orjson would be wrong.

orjson is the fastest codec for Python, but it refuses integers beyond 64 bits when encoding
and silently turns them into floats when decoding. Big integers are ordinary in this field
(factorising, hashes, ids), so those payloads take the exact, slower path.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

JSONDecodeError = ValueError
"""What ``loads`` raises (orjson's and json's decode errors are both ValueErrors)."""

# Digits -> "0", everything else -> " ": a run of 19 zeros is a number orjson may round.
# bytes.translate + a substring search: 0.3 us on a typical envelope, a regex took 1.3 us.
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


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
    if _LONG_RUN in data.translate(_DIGITS):
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
    return orjson.loads(data)
