"""Count the lines of a log file that match a pattern: one task per file."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from redpool import task


@task(retries=2, backoff=0.5)
def count_matches(path: str, pattern: str) -> dict[str, int | str]:
    """Lines of ``path`` (plain or .gz) matching the regular expression ``pattern``.

    Retried twice: a file on a network share can fail to open once and work the next time.
    """
    regex = re.compile(pattern.encode())
    opener = gzip.open if path.endswith(".gz") else open
    lines = matched = 0
    with opener(Path(path), "rb") as f:
        for line in f:
            lines += 1
            matched += regex.search(line) is not None
    return {"path": path, "lines": lines, "matches": matched}
