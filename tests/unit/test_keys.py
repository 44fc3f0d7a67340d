"""The key layout of the wire contract."""

from __future__ import annotations

import pytest

from redpool.errors import ConfigError
from redpool.keys import Keys


def test_every_key_shares_the_hash_tagged_prefix() -> None:
    """All keys of a pipeline live in one cluster slot: same {NAME} hash tag."""
    keys = Keys("kw")
    names = [
        keys.tasks,
        keys.results,
        keys.dead,
        keys.delayed,
        keys.stats,
        keys.producers,
        keys.workers,
        keys.leases,
        keys.sinking,
        keys.inflight("host-1-ab", 3),
    ]
    assert all(n.startswith("redpool:{kw}:") for n in names)
    assert keys.tasks == "redpool:{kw}:tasks"
    assert keys.results == "redpool:{kw}:results"
    assert keys.dead == "redpool:{kw}:dead"
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", ["", "a}b", "a{b", "with space", "x:y", "é", "a" * 101])
def test_names_that_would_break_the_layout_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="pipeline name"):
        Keys(name)
