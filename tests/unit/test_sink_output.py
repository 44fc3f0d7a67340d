"""The sink's file output, exactly once: whose mark is whose, and a sink whose batch another
sink took over. On fakeredis; the kill itself is in tests/fault/test_run_faults.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import fakeredis
import orjson
import pytest

from redpool.errors import SinkLeaseLost
from redpool.producer import Producer
from redpool.sink import Sink, SinkSettings
from redpool.sink.outputs import JsonLinesFile
from tests.inproc import child, run_until_idle
from tests.procs import read_results

PIPELINE = "out"


OPENED: list[BinaryIO] = []


@pytest.fixture(autouse=True)
def _close_files() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def file_sink(client: fakeredis.FakeRedis, path: Path, batch: int = 2) -> Sink:
    stream = open(path, "ab")  # noqa: SIM115 - closed after the test
    OPENED.append(stream)
    out = JsonLinesFile(stream, str(path))
    settings = SinkSettings(block_seconds=0.01, batch_size=batch)
    return Sink(client, PIPELINE, out, flush=out.flush, settings=settings)


def output(sink: Sink) -> JsonLinesFile:
    assert isinstance(sink.handler, JsonLinesFile)
    return sink.handler


def ready(client: fakeredis.FakeRedis, n: int) -> set[str]:
    with Producer(client, PIPELINE) as p:
        p.map("echo", range(n), chunksize=1)
    assert run_until_idle(child(client, PIPELINE)) == n
    return {f"{p.id}-{i}" for i in range(1, n + 1)}


def test_a_mark_is_its_files_own(tmp_path: Path) -> None:
    """Two sinks of one pipeline on two hosts, each writing its own /out/results.jsonl (a
    standby that took over): a restart cuts its own file to its own mark. Keyed by the path
    alone, the other host's mark would apply, and A's unacknowledged line would stay."""
    client = fakeredis.FakeRedis()
    ready(client, 6)
    path, host_a, host_b = (tmp_path / n for n in ("results.jsonl", "a.jsonl", "b.jsonl"))
    first = file_sink(client, path)
    first.claim()
    first._resume_output()
    assert first.drain_once(block=False) == 2  # 2 results in A's file, acknowledged
    output(first).stream.close()
    path.rename(host_a)  # A's file stays on host A
    client.delete(first.pipe.head.keys.sink)  # A's lease ran out
    file_sink(client, path).run()  # B, on host B, at the same path: the other 4
    path.rename(host_b)
    host_a.rename(path)  # host A again
    with open(path, "ab") as f:  # what A wrote before it died, never acknowledged
        f.write(b'{"id":"not acknowledged"}\n')
    file_sink(client, path)._resume_output()
    assert len(read_results(path)) == 2 and len(read_results(host_b)) == 4


def test_a_recreated_file_starts_from_its_own_size(tmp_path: Path) -> None:
    """The file was deleted and made anew at the same path (a container's fresh volume):
    nothing of the old mark applies; a crash before the first ack is still cut back."""
    client = fakeredis.FakeRedis()
    ready(client, 4)
    path = tmp_path / "r.jsonl"
    old = file_sink(client, path)
    old.claim()
    old._resume_output()
    old.drain_once(block=False)
    output(old).stream.close()
    path.unlink()
    path.write_bytes(b'{"id":"the new file\'s own"}\n')
    new = file_sink(client, path)
    new._resume_output()  # its start is recorded: the new file's size
    output(new).write_lines([b'{"id":"written, never acknowledged"}'])
    output(new).stream.close()
    file_sink(client, path)._resume_output()
    assert [r["id"] for r in read_results(path)] == ["the new file's own"]


def test_a_sink_whose_batch_was_taken_over_cuts_its_copy_and_stops(tmp_path: Path) -> None:
    """A stalled past its lease; B took the batch A held and wrote it. A's ack is refused:
    A cuts what it wrote of that batch from its file and stops (else the batch is twice)."""
    client = fakeredis.FakeRedis()
    ids = ready(client, 4)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    stalled = file_sink(client, a, batch=4)
    stalled.claim()
    stalled._resume_output()
    standby = file_sink(client, b, batch=4)

    def take_over() -> None:  # what happens while A is paused, after it wrote
        output(stalled).flush()
        client.delete(stalled.pipe.head.keys.sink)
        assert standby.claim() and standby.drain_once(block=False)

    stalled.flush = take_over
    with pytest.raises(SinkLeaseLost, match="taken over by another sink"):
        stalled.drain_once(block=False)
    assert read_results(a) == []
    assert {r["id"] for r in read_results(b)} == ids


def test_a_line_torn_by_a_kill_mid_write_is_gone_after_a_restart(tmp_path: Path) -> None:
    """Exactly once, per line: a sink killed inside a write (half a line past its
    acknowledged mark) leaves no torn line once a sink restarts; the held batch goes out
    again whole."""
    client = fakeredis.FakeRedis()
    ids = ready(client, 4)
    path = tmp_path / "results.jsonl"
    first = file_sink(client, path)
    first.drain_once(block=False)  # two results written and acknowledged
    first.pipe.release(first.id)
    OPENED.pop().close()
    with open(path, "ab") as torn:  # the next batch's first line, cut mid-write by a kill
        torn.write(b'{"id": "half-a-res')
    file_sink(client, path).run()
    lines = path.read_bytes().splitlines()
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines), lines
    assert {str(r["id"]) for r in read_results(path)} == ids and len(lines) == 4


def test_a_file_that_ends_in_a_partial_line_not_ours_gets_a_newline(tmp_path: Path) -> None:
    """A file this pipeline never wrote whose last line has no newline: the first result
    starts a line of its own, and the partial line is kept as it was."""
    client = fakeredis.FakeRedis()
    ids = ready(client, 2)
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"earlier": 1}\n{"partial": ')
    file_sink(client, path).run()
    lines = path.read_bytes().splitlines()
    assert lines[:2] == [b'{"earlier": 1}', b'{"partial": ']
    assert {str(r["id"]) for r in map(orjson.loads, lines[2:])} == ids
