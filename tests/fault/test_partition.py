"""Two worker hosts, one of them in its own network namespace, and a network partition.

The namespaced host loses its link to Redis mid-task. Its lease runs out, the other host
reaps it and runs its task again; when the link comes back, the cut-off host finishes the
same task and tries to commit: the fence drops that second result. This is the case the
task-id guard exists for, exercised over a real (virtual) network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Host, wait_for
from tests.redis_server import RedisServer, unavailable
from tests.runs import LEASE, PIPELINE, Run

pytestmark = pytest.mark.slow

SUBNET = "10.213.7"  # our own test host's link, inside this machine


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def netns() -> Iterator[tuple[str, str]]:
    """(namespace, root-side veth) of one test host linked to this machine."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        unavailable("network namespaces need root and iproute2")
    tag = f"{os.getpid() % 100000}"
    ns, outside, inside = f"rpns{tag}", f"rpo{tag}", f"rpi{tag}"
    ip("netns", "add", ns)
    try:
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", ns)
        ip("addr", "add", f"{SUBNET}.1/24", "dev", outside)
        ip("link", "set", outside, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{SUBNET}.2/24", "dev", inside)
        ip("netns", "exec", ns, "ip", "link", "set", inside, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, outside
    finally:
        subprocess.run(["ip", "link", "del", outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_partitioned_host_is_reaped_and_its_late_result_dropped(
    netns: tuple[str, str], tmp_path: Path
) -> None:
    ns, link = netns
    server = RedisServer(tmp_path / "redis", appendonly=True, bind=f"127.0.0.1 {SUBNET}.1")
    server.start()
    run = Run(server, tmp_path)
    try:
        remote = Host(
            f"redis://{SUBNET}.1:{server.port}/0",
            PIPELINE,
            "--lease",
            LEASE,
            log=tmp_path / "remote.log",
            prefix=("ip", "netns", "exec", ns),
        )
        run.hosts.append(remote)
        run.start_sink()
        release = tmp_path / "release"
        gate_id = run.submit("gate", "gated", str(release))
        wait_for((tmp_path / "release.running").exists, what="the remote host to run the gate")
        holder = run.holding(gate_id)
        assert holder is not None
        remote_id = holder[0]

        ip("link", "set", link, "down")  # the partition
        run.host()
        wait_for(lambda: remote_id not in run.workers(), timeout=30, what="the reap")
        (local_id,) = run.workers()
        run.submit_many("echo", [[i] for i in range(2000)])
        release.touch()  # both copies of the gate task finish now
        wait_for(lambda: any(r["id"] == gate_id for r in run.results()), what="the gate result")

        ip("link", "set", link, "up")  # the partition heals
        wait_for(
            lambda: "given back while they ran" in remote.output(),
            timeout=60,
            what="the remote host's late commit to be fenced",
        )
        results = {str(r["id"]): r for r in run.finish()}
        assert results[gate_id]["attempts"] == 1
        assert str(results[gate_id]["worker"]).startswith(local_id + ":")
    finally:
        run.clean_up()
        server.kill()
