"""Results back to the caller: `Pool` (multiprocessing.Pool's methods) and `Executor`
(concurrent.futures), whose tasks run on the worker hosts of a pipeline and whose answers
come back through the caller's own reply list."""

from redpool.pool.caller import CallerGone, CallerSettings
from redpool.pool.futures import Executor
from redpool.pool.mp import AsyncResult, Pool
from redpool.pool.remote import TaskFailed

__all__ = ["AsyncResult", "CallerGone", "CallerSettings", "Executor", "Pool", "TaskFailed"]
