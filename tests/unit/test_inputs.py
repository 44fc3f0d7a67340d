"""JSON Lines input for ``redpool produce``."""

from __future__ import annotations

from redpool.producer.inputs import call_from_json, read_calls


def test_json_values_map_to_calls_without_being_written_again() -> None:
    assert call_from_json(b"[1, 2]") == (b"[1, 2]", None)
    assert call_from_json(b'{"a": 1}') == (b"[]", b'{"a": 1}')
    assert call_from_json(b"7") == (b"[7]", None)
    assert call_from_json(b'"s"') == (b'["s"]', None)
    assert call_from_json(b"null") == (b"[null]", None)


def test_bad_lines_are_reported_by_number_and_skipped() -> None:
    bad: list[tuple[int, str]] = []
    lines = [b"1\n", b"{oops\n", b"\n", b"[2, 3]\n", b"'single'\n"]
    calls = list(read_calls(lines, lambda n, why: bad.append((n, why))))
    assert calls == [(b"[1]", None), (b"[2, 3]", None)]
    assert [n for n, _ in bad] == [2, 5]
    assert all("not JSON" in why for _, why in bad)
