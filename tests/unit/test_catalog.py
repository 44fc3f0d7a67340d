"""Which pipelines a Redis holds, on fakeredis and on a real redis-server alike."""

from __future__ import annotations

import pytest
import redis

from redpool.catalog import Catalog
from redpool.errors import ConfigError
from redpool.keys import EVERY_PIPELINE, Keys, pipeline_of
from redpool.producer import Producer


def test_a_pipeline_exists_while_any_of_its_keys_does(
    any_redis: redis.Redis, pipeline: str
) -> None:
    catalog = Catalog.connect(any_redis)
    assert pipeline not in catalog.names()
    with pytest.raises(ConfigError, match=f"^no pipeline '{pipeline}' in Redis at redis://"):
        catalog.find(pipeline)
    any_redis.rpush(Keys(pipeline).inflight("host-1-ab", 0), b"x")  # a holder's key alone
    assert catalog.find(pipeline).name == pipeline
    assert pipeline in catalog.names()


def test_the_survey_reads_each_pipeline(any_redis: redis.Redis, pipeline: str) -> None:
    with Producer(any_redis, pipeline) as producer:
        producer.map("echo", range(5))
    survey = Catalog.connect(any_redis).survey()
    assert survey.pipelines[pipeline].backlog == 5 and survey.pipelines[pipeline].closed
    assert not survey.cluster


def test_names_on_an_empty_redis_and_what_is_not_a_pipeline(fake: redis.Redis) -> None:
    catalog = Catalog.connect(fake)
    with pytest.raises(ConfigError, match=r"\(no pipelines there\)$"):
        catalog.find("nope")
    fake.set("redpool:plain", b"x")
    fake.set("redpool:{with space}:tasks", b"x")
    fake.set(Keys("b").tasks, b"x")
    fake.set(Keys("a.1").stats, b"x")
    assert catalog.names() == ["a.1", "b"]
    with pytest.raises(ConfigError, match=r"\(pipelines there: a\.1, b\)$"):
        catalog.find("nope")


@pytest.mark.parametrize("name", ["a", "x.y-z_0", "a" * 100])
def test_the_name_comes_back_from_every_key(name: str) -> None:
    keys = Keys(name)
    for key in (keys.tasks, keys.held(keys.inflight("h-1-a", 2)), keys.every.rstrip("*") + "x"):
        assert pipeline_of(key) == name and pipeline_of(key.encode()) == name
    assert EVERY_PIPELINE.replace("*", name, 1).rstrip("*") == keys.prefix
    assert pipeline_of("redpool:other") is None and pipeline_of("redpool:{a b}:tasks") is None
