"""RQ jobs: RQ imports plain functions by dotted path."""

from work import burn, noop

__all__ = ["burn", "noop"]
