"""A task's error as an exception raised in the caller: its type name, message and the
traceback from the host where it ran."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from redpool.errors import RedpoolError


class TaskFailed(RedpoolError):
    """A task ended with an error. The subclass is named after the remote exception's type
    (``except TaskFailed`` catches them all; ``err.type`` is the name), ``remote_traceback``
    is the worker's traceback (empty with ``--no-tracebacks``)."""

    type: str = "TaskFailed"

    def __init__(self, message: str, remote_traceback: str = "", task_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remote_traceback = remote_traceback
        self.task_id = task_id

    def __str__(self) -> str:
        tail = f"\n\nRemote traceback:\n{self.remote_traceback}" if self.remote_traceback else ""
        return f"{self.message}{tail}"


_KINDS: dict[str, type[TaskFailed]] = {}


def settle(future: Future[Any], answer: dict[str, Any]) -> None:
    """A task's answer into its future: its value, or its error raised; a future its user
    cancelled meanwhile is left as it is."""
    if not future.set_running_or_notify_cancel():
        return
    if answer.get("ok"):
        future.set_result(answer.get("value"))
    else:
        future.set_exception(error_of(answer))


def error_of(answer: dict[str, Any]) -> TaskFailed:
    """The exception an error answer stands for."""
    err = answer.get("error")
    err = err if isinstance(err, dict) else {}
    name = str(err.get("type") or "TaskFailed")
    kind = _KINDS.get(name)
    if kind is None:
        safe = name if name.isidentifier() else "TaskFailed"
        kind = _KINDS[name] = type(safe, (TaskFailed,), {"type": name})
    return kind(
        str(err.get("message", "")), str(err.get("traceback", "")), str(answer.get("id", ""))
    )
