"""The producer role: push tasks to a pipeline (``python -m producer`` = ``redpool produce``)."""

from producer.producer import Producer

__all__ = ["Producer"]
