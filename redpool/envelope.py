"""Task, result and dead-letter envelopes: the JSON a person reads in ``redis-cli``.

A task is ``{"id", "task", "args", "kwargs"}`` plus ``producer`` (who submitted it; the sink
counts only those toward the end of the stream) and ``attempts`` (failed attempts so far).
A result is ``{"id", "task", "ok": true, "value"}`` or ``{"id", "task", "ok": false, "error":
{"type", "message", "traceback"}}`` plus ``worker``, ``attempts`` and ``ms``. A dead letter is
``{"reason", "payload", "at"}`` plus whatever of ``id``/``task``/``error``/``attempts`` is known.

Everything is encoded and parsed through `redpool.codec` (exact for big integers), except the
sink's look at a result, which reads no numbers. Nothing here touches Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from redpool import codec
from redpool.errors import PayloadError

MAX_PAYLOAD = 16 * 1024 * 1024
"""Bytes; a bigger task payload goes to the dead list instead of into a worker's memory."""
_SHOWN = 2048
"""How much of an oversized payload a dead letter keeps, so the dead list stays small."""


@dataclass(slots=True)
class TaskEnvelope:
    """A parsed task; ``raw`` is the exact payload, for retries and dead letters.

    Not frozen: a frozen dataclass costs several times more per instance, on a path that
    runs once per task. Treat it as read-only.
    """

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    producer: str | None
    raw: bytes


def encode_task(
    task_id: str,
    name: str,
    args: list[Any] | tuple[Any, ...],
    kwargs: dict[str, Any],
    producer: str | None = None,
) -> bytes:
    """Raises TypeError when an argument is not JSON."""
    body: dict[str, Any] = {"id": task_id, "task": name, "args": args, "kwargs": kwargs}
    if producer is not None:
        body["producer"] = producer
    return codec.dumps(body)


def parse_task(raw: bytes, max_size: int = MAX_PAYLOAD) -> TaskEnvelope:
    """Raises PayloadError with a reason a person can act on."""
    if len(raw) > max_size:
        raise PayloadError(raw, f"payload of {len(raw)} bytes exceeds the {max_size} byte limit")
    try:
        body = codec.loads(raw)
    except codec.JSONDecodeError as exc:
        raise PayloadError(raw, f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError(raw, f"a task must be a JSON object, not {type(body).__name__}")
    task_id, name = body.get("id"), body.get("task")
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    attempts = body.get("attempts", 0)
    producer = body.get("producer")
    if not isinstance(task_id, str) or not task_id:
        raise PayloadError(raw, "field 'id' must be a non-empty string")
    if not isinstance(name, str) or not name:
        raise PayloadError(raw, "field 'task' must be a non-empty string")
    if not isinstance(args, list):
        raise PayloadError(raw, "field 'args' must be a JSON array")
    if not isinstance(kwargs, dict):
        raise PayloadError(raw, "field 'kwargs' must be a JSON object")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        raise PayloadError(raw, "field 'attempts' must be a non-negative integer")
    if producer is not None and not isinstance(producer, str):
        raise PayloadError(raw, "field 'producer' must be a string")
    return TaskEnvelope(task_id, name, args, kwargs, attempts, producer, raw)


def salvage(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(id, task, producer) from a payload that failed to parse, where they can be read.

    A submitted task that names an unknown task or carries bad fields still gets an error
    result under its id, so the run completes instead of waiting for it forever.
    """
    try:
        body = codec.loads(raw) if len(raw) <= MAX_PAYLOAD else None
    except codec.JSONDecodeError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    fields = (body.get("id"), body.get("task"), body.get("producer"))
    return tuple(v if isinstance(v, str) else None for v in fields)  # type: ignore[return-value]


def with_attempts(raw: bytes, attempts: int) -> bytes:
    """The same task with its attempt count set; every other field kept as it was.

    Raises NotJSON when the payload parses but cannot be written again (nesting deeper than
    the encoder allows): the caller dead-letters it."""
    body = codec.loads(raw)
    if attempts:
        body["attempts"] = attempts
    else:
        body.pop("attempts", None)
    return codec.dumps(body)


def error(type_name: str, message: str, traceback: str = "") -> dict[str, str]:
    """An error description that always encodes: a lone surrogate in an exception's message
    (a task's own garbage) is escaped rather than allowed to break the result."""
    return {"type": _text(type_name), "message": _text(message), "traceback": _text(traceback)}


def _text(s: str) -> str:
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def encode_result(
    task_id: str,
    name: str,
    *,
    ok: bool,
    value: Any = None,
    err: dict[str, str] | None = None,
    worker: str = "",
    attempts: int = 0,
    ms: float | None = None,
    producer: str | None = None,
) -> bytes:
    """Raises TypeError when ``value`` is not JSON."""
    body: dict[str, Any] = {"id": task_id, "task": name, "ok": ok}
    if ok:
        body["value"] = value
    else:
        body["error"] = err
    body["worker"] = worker
    if attempts:
        body["attempts"] = attempts
    if ms is not None:
        body["ms"] = round(ms, 3)
    if producer is not None:
        body["producer"] = producer
    return codec.dumps(body)


def encode_dead(
    raw: bytes,
    reason: str,
    *,
    task_id: str | None = None,
    name: str | None = None,
    err: dict[str, str] | None = None,
    attempts: int = 0,
    worker: str = "",
) -> bytes:
    """A dead letter; keeps the payload verbatim when it is text of a sane size."""
    body: dict[str, Any] = {"reason": reason}
    if task_id is not None:
        body["id"] = task_id
    if name is not None:
        body["task"] = name
    if err is not None:
        body["error"] = err
    if attempts:
        body["attempts"] = attempts
    body["worker"] = worker
    body["at"] = round(time.time(), 3)
    if len(raw) > MAX_PAYLOAD:
        body["payload"] = raw[:_SHOWN].decode("utf-8", "replace")
        body["truncated"] = len(raw)
    else:
        body["payload"] = raw.decode("utf-8", "replace")
    return codec.dumps(body)


def failure(
    env: TaskEnvelope, err: dict[str, str], reason: str, attempts: int, worker: str
) -> tuple[bytes, bytes]:
    """A task that failed for good: its error result and its dead letter, always together."""
    result = encode_result(
        env.id,
        env.task,
        ok=False,
        err=err,
        worker=worker,
        attempts=attempts,
        producer=env.producer,
    )
    letter = encode_dead(
        env.raw,
        reason,
        task_id=env.id,
        name=env.task,
        err=err,
        attempts=attempts,
        worker=worker,
    )
    return result, letter


def rejection(raw: bytes, reason: str, worker: str) -> tuple[bytes | None, bytes]:
    """A payload that is not a task we can run: its dead letter, and an error result when it
    has an id, so a submitted task that names an unknown task still completes the run."""
    task_id, name, producer = salvage(raw)
    letter = encode_dead(raw, reason, task_id=task_id, name=name, worker=worker)
    if task_id is None:
        return None, letter
    err = error("PayloadError", reason)
    result = encode_result(task_id, name or "", ok=False, err=err, worker=worker, producer=producer)
    return result, letter


@dataclass
class Outcome:
    """What one batch writes back: results, dead letters and retries, in the order commit.lua
    writes them, and the counters it moves."""

    results: list[bytes] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)
    retries: list[tuple[int, bytes]] = field(default_factory=list)
    """(delay in ms, task envelope) pairs."""
    ok: int = 0
    failed: int = 0


@dataclass(slots=True)
class ResultEnvelope:
    """What the sink reads back; ``raw`` is written out as it is (read-only, not frozen for
    the same reason as TaskEnvelope)."""

    id: str | None
    ok: bool
    producer: str | None
    raw: bytes


def parse_result(raw: bytes) -> ResultEnvelope:
    """Lenient on purpose: the sink must pass on whatever is in the results list.

    Reads only id, ok and producer, and passes ``raw`` on as it is, so plain orjson is exact
    enough here (it would only round a big integer inside the value, which is not used).
    """
    try:
        body = orjson.loads(raw)
    except codec.JSONDecodeError:
        return ResultEnvelope(None, False, None, raw)
    if not isinstance(body, dict):
        return ResultEnvelope(None, False, None, raw)
    task_id, producer = body.get("id"), body.get("producer")
    return ResultEnvelope(
        task_id if isinstance(task_id, str) else None,
        body.get("ok") is True,
        producer if isinstance(producer, str) else None,
        raw,
    )
