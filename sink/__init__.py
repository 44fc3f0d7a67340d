"""The sink role: drain a pipeline's results (``python -m sink`` = ``redpool sink``)."""

from sink.sink import Sink, Summary

__all__ = ["Sink", "Summary"]
