"""Dramatiq actors: Redis broker (db 3) and results (db 4) on $BENCH_REDIS_PORT."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from work import burn as _burn
from work import noop as _noop

PORT = int(os.environ["BENCH_REDIS_PORT"])
broker = RedisBroker(host="127.0.0.1", port=PORT, db=3)
broker.add_middleware(Results(backend=RedisBackend(host="127.0.0.1", port=PORT, db=4)))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def noop(x):
    return _noop(x)


@dramatiq.actor(store_results=True, max_retries=0)
def burn(n):
    return _burn(n)
