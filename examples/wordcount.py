# examples/wordcount.py: map-reduce, one task per log file, the reduce in the caller
"""Count the words of every file under a folder of logs (plain or .gz) on the worker hosts.

Workers: redpool worker --pipeline words --tasks examples.wordcount
Caller:  python -m examples.wordcount FOLDER [TOP]   (prints "COUNT<tab>WORD", commonest first)

A file is read where a worker runs it, so its path must name the same file there (one host,
or a shared mount); only each file's counts cross Redis.
"""

from __future__ import annotations

import gzip
import os
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from redpool import Pool, task


@task
def count_words(path: str) -> dict[str, int]:
    """The map: how often each whitespace-separated word occurs in one file."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        return dict(Counter(word for line in lines for word in line.split()))


def word_count(pool: Pool, files: Iterable[str]) -> Counter[str]:
    """The reduce: each file's counts added up as they come back, in whatever order.
    chunksize=1: one file per task, so the files spread over every worker process."""
    total: Counter[str] = Counter()
    for counts in pool.imap_unordered(count_words, files, chunksize=1):
        total.update(counts)
    return total


def main() -> None:
    folder, top = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None
    files = sorted(str(p.resolve()) for p in folder.rglob("*") if p.is_file())
    with Pool(os.environ.get("REDIS_URL", "redis://localhost:6379/0"), "words") as pool:
        total = word_count(pool, files)
    for word, n in total.most_common(top):
        print(f"{n}\t{word}")


if __name__ == "__main__":
    main()
