# examples/forward.py: a stream consumer that forwards each result over HTTP
"""Read JSON lines from stdin, run task TASK on each value on the worker hosts, and POST
each result, in input order, to URL as ``{"input": VALUE, "value": RESULT}``.

Workers: redpool worker --pipeline stream --tasks examples.factor
Stream:  ... | python -m examples.forward TASK URL

``Pool.imap`` keeps at most 1,000 values out at once, so a stream of any length runs in
bounded memory. A task that fails, or a POST answered with an error, stops the consumer
(exit 1): this recipe neither retries nor skips.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from redpool import Pool


def values(lines: Iterable[str], sent: deque[Any]) -> Iterator[Any]:
    """One JSON value per non-blank line, each noted in ``sent``: imap yields results only,
    in the order of their inputs, so the oldest value noted is the next result's."""
    for line in lines:
        if line.strip():
            sent.append(json.loads(line))
            yield sent[-1]


def post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # raises on 4xx and 5xx
        response.read()


def main() -> None:
    task, url = sys.argv[1], sys.argv[2]
    sent: deque[Any] = deque()
    redis = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    with Pool(redis, "stream", max_pending=1000) as pool:
        for value in pool.imap(task, values(sys.stdin, sent), chunksize=1):
            post(url, {"input": sent.popleft(), "value": value})


if __name__ == "__main__":
    main()
