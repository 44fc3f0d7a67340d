"""The sink role: drain a pipeline's results (``python -m redpool.sink`` is ``redpool sink``)."""

from redpool.sink.sink import Sink, SinkSettings, Summary

__all__ = ["Sink", "SinkSettings", "Summary"]
