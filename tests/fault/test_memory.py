"""Redis at its maxmemory under noeviction: an outage-like wait, and the sink still drains."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.procs import Host, read_results, redpool, wait_for
from tests.redis_server import RedisServer


@pytest.mark.slow
def test_a_full_redis_is_waited_out_and_the_sink_frees_it(tmp_path: Path) -> None:
    """Guarantee: a full Redis loses nothing and deadlocks nothing. The workers say so in one
    line and wait; status still reads; the sink, which frees memory, starts (its lease,
    take and acknowledgement run as scripts allowed then) and the run ends complete."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        client, url = server.client(), server.url
        lines = b"".join(b'"%s"\n' % (b"x" * 2000) for _ in range(400))
        produced = redpool(
            *("produce", "--redis", url, "--pipeline", "full", "--task", "echo"),
            *("--chunksize", "1"),
            input=lines,
        )
        assert produced.returncode == 0, produced.stderr
        host = Host(url, "full", log=tmp_path / "w.log", processes=1)
        wait_for(lambda: client.hget("redpool:{full}:stats", "ok") == b"400", what="the run")
        limit = int(client.info("memory")["used_memory"]) - 100_000
        client.config_set("maxmemory", limit)  # the results fill Redis past its maxmemory
        wait_for(lambda: "Redis is out of memory" in host.output(), what="the workers to see it")
        for look in (("status",), ("status", "--pipeline", "full")):
            shown = redpool(*look, "--redis", url)
            assert shown.returncode == 0, shown.stderr
        out = tmp_path / "out.jsonl"
        sunk = redpool("sink", "--redis", url, "--pipeline", "full", "--output", str(out))
        assert sunk.returncode == 0, sunk.stderr
        host.signal(15)
        assert host.wait() == 0, host.output()
        assert len({r["id"] for r in read_results(out)}) == 400
        log = host.output()
        assert "Traceback" not in log, log
        full = [line for line in log.splitlines() if "out of memory" in line]
        assert full and all(
            f"Redis is out of memory (maxmemory {limit:,} bytes): " in line for line in full
        ), full
    finally:
        server.kill()
