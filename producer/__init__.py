"""The producer role: push tasks to a pipeline (``python -m redpool.producer`` is
``redpool produce``)."""

from redpool.producer.producer import Producer, ProducerSettings

__all__ = ["Producer", "ProducerSettings"]
