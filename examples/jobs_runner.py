# examples/jobs_runner.py: many jobs, a bound on those in flight, done callbacks
"""Run N jobs on the worker hosts through a `concurrent.futures.Executor`: at most
MAX_PENDING are queued or running at once (``submit`` waits for room, so a long list of jobs
never floods Redis), a done callback reports each one as it ends, and ``as_completed``
gathers the results.

Workers: redpool worker --pipeline jobs --tasks examples.jobs_runner
Runner:  python -m examples.jobs_runner [JOBS [MAX_PENDING]]   (prints "JOB DIGEST" lines)
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from concurrent.futures import Future, as_completed

from redpool import Executor, task


@task
def digest(job: int, rounds: int) -> str:
    """A CPU-bound job: ``rounds`` of SHA-256 over the job's number."""
    value = str(job).encode()
    for _ in range(rounds):
        value = hashlib.sha256(value).digest()
    return value.hex()


class Progress:
    """The done callback: counts the jobs finished, and the most ever unfinished at once.
    It runs in the executor's thread that receives answers: it counts and prints, no more."""

    def __init__(self, total: int) -> None:
        self.total, self.submitted, self.finished, self.peak = total, 0, 0, 0
        self.lock = threading.Lock()

    def submitted_one(self) -> None:
        with self.lock:
            self.submitted += 1
            self.peak = max(self.peak, self.submitted - self.finished)

    def __call__(self, future: Future[str]) -> None:
        with self.lock:
            self.finished += 1
            failed = "" if future.exception() is None else " (failed)"
        print(f"{self.finished}/{self.total} done{failed}", file=sys.stderr)


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    max_pending = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    progress = Progress(jobs)
    url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    with Executor(url, "jobs", max_pending=max_pending) as executor:
        futures: dict[Future[str], int] = {}
        for job in range(jobs):
            future = executor.submit(digest, job, 20_000)  # waits while max_pending are out
            progress.submitted_one()
            future.add_done_callback(progress)
            futures[future] = job
        results = {futures[f]: f.result() for f in as_completed(futures)}
    for job in sorted(results):
        print(job, results[job])
    print(f"at most {progress.peak} job(s) unfinished at once", file=sys.stderr)


if __name__ == "__main__":
    main()
