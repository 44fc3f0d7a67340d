"""JSON Lines input for ``redpool produce``."""

from __future__ import annotations

from redpool.producer.inputs import call_from_json, read_calls


def test_json_values_map_to_calls() -> None:
    assert call_from_json([1, 2]) == ([1, 2], {})
    assert call_from_json({"a": 1}) == ([], {"a": 1})
    assert call_from_json(7) == ([7], {})
    assert call_from_json("s") == (["s"], {})
    assert call_from_json(None) == ([None], {})


def test_bad_lines_are_reported_by_number_and_skipped() -> None:
    bad: list[tuple[int, str]] = []
    lines = [b"1\n", b"{oops\n", b"\n", b"[2, 3]\n", b"'single'\n"]
    calls = list(read_calls(lines, lambda n, why: bad.append((n, why))))
    assert calls == [([1], {}), ([2, 3], {})]
    assert [n for n, _ in bad] == [2, 5]
    assert all("not JSON" in why for _, why in bad)
