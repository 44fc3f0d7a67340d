"""What a user reads when Redis says no: where Redis is (never its password), and what to do."""

from __future__ import annotations

import logging

import pytest
import redis
from redis import exceptions as rx

from redpool.connection import Outage, address, explain
from redpool.errors import ConfigError, RedisRefused

WHERE = "redis://***@10.0.0.5:7000/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost", "redis://localhost:6379/0"),
        ("redis://:s3cret@10.0.0.5:7000/2", "redis://***@10.0.0.5:7000/2"),
        ("rediss://alice:s3cret@[::1]:6380/0", "rediss://***@[::1]:6380/0"),
        ("unix:///run/redis.sock?db=3", "unix:///run/redis.sock?db=3"),
    ],
)
def test_address_is_the_url_without_its_password(url: str, shown: str) -> None:
    assert address(redis.Redis.from_url(url)) == shown


def test_no_password_and_a_refused_one_say_what_to_do() -> None:
    needs = explain(rx.AuthenticationError("Authentication required.", status_code="NOAUTH"), WHERE)
    assert isinstance(needs, ConfigError)
    assert str(needs) == (
        f"Redis at {WHERE} needs a password: put it in the URL "
        "(redis://:PASSWORD@host:port/0 or redis://USER:PASSWORD@...)"
    )
    wrong = explain(rx.AuthenticationError("invalid pair.", status_code="WRONGPASS"), WHERE)
    assert isinstance(wrong, ConfigError)
    assert str(wrong).startswith(f"Redis at {WHERE} refused the password in the URL (invalid")


def test_a_cluster_redirect_names_the_node_and_the_pipeline() -> None:
    moved = explain(rx.MovedError("15495 10.0.0.6:7001", status_code="MOVED"), WHERE, "logs")
    assert isinstance(moved, ConfigError)
    assert str(moved) == (
        f"Redis at {WHERE} is a Redis Cluster node, and pipeline 'logs' keeps its keys on node "
        "10.0.0.6:7001: allow the user in the URL INFO (redpool finds the cluster's nodes "
        "through it), or point --redis at redis://***@10.0.0.6:7001/0"
    )
    asked = explain(rx.AskError("15495 10.0.0.6:7001", status_code="ASK"), WHERE, "logs")
    assert "is moving its keys to node 10.0.0.6:7001: allow the user" in str(asked)


def test_other_replies_keep_what_redis_said() -> None:
    """Code that tells replies apart (a closed stream) reads ``reply``; a person reads where."""
    refused = explain(rx.ResponseError("STREAMCLOSED producer p1"), WHERE, "logs")
    assert isinstance(refused, RedisRefused)
    assert refused.reply == "STREAMCLOSED producer p1"
    assert str(refused) == f"Redis at {WHERE} answered: STREAMCLOSED producer p1"
    down = explain(rx.ClusterDownError("The cluster is down", status_code="CLUSTERDOWN"), WHERE)
    assert str(down).startswith(f"Redis at {WHERE} is a Redis Cluster node, and it says the")
    replica = rx.MasterDownError("Link with MASTER is down", status_code="MASTERDOWN")
    master = explain(replica, WHERE)
    assert "Cluster" not in str(master)  # a replica whose primary is away, not a cluster


@pytest.mark.parametrize(
    "reply",
    [
        "READONLY You can't write against a read only replica.",
        "MISCONF Redis is configured to save RDB snapshots, but it's unable to persist to disk",
        "BUSY Redis is busy running a script.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    ],
)
def test_a_redis_that_will_serve_again_is_waited_out_not_refused(reply: str) -> None:
    """A failover's READONLY and its kin pass: a worker must wait, not dead-letter a batch
    or stop the host as it would for a refusal."""
    answers = iter([rx.ResponseError(reply), rx.ResponseError(reply), "done"])

    def call() -> object:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert Outage(logging.getLogger("test")).call(call) == "done"
    with pytest.raises(RedisRefused):  # a real refusal still is one
        Outage(logging.getLogger("test")).call(_raise, rx.ResponseError("ERR unknown command"))


def _raise(exc: Exception) -> None:
    raise exc
