"""Celery app: Redis broker (db 1) and result backend (db 2) on $BENCH_REDIS_PORT."""

import os

from celery import Celery
from work import burn as _burn
from work import noop as _noop

PORT = os.environ["BENCH_REDIS_PORT"]
app = Celery(
    "celery_app", broker=f"redis://127.0.0.1:{PORT}/1", backend=f"redis://127.0.0.1:{PORT}/2"
)
app.conf.worker_prefetch_multiplier = 4


@app.task
def noop(x):
    return _noop(x)


@app.task
def burn(n):
    return _burn(n)
