"""Huey tasks: a RedisHuey (queue and results, db 5) on $BENCH_REDIS_PORT."""

import os

from huey import RedisHuey
from work import burn as _burn
from work import noop as _noop

PORT = int(os.environ["BENCH_REDIS_PORT"])
huey = RedisHuey("bench", host="127.0.0.1", port=PORT, db=5)


@huey.task()
def noop(x):
    return _noop(x)


@huey.task()
def burn(n):
    return _burn(n)
