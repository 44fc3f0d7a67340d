"""Answers: how tasks end (results, dead letters) and what a worker writes back for a batch.

A single task's element of the results list is one result object: ``{"id", "ok", "value" |
"error", "attempts"?, "ms", "rerun"?, "task", "worker", "producer"?}`` (``rerun``: the k-th
re-run of that id by ``dead retry``). A chunk's is a header and one
answer per line, each a result object but for the fields the header holds::

    {"n":2,"task":"add","producer":"P","worker":"W","ok":1,"failed":1,"results":[
    {"id":"P-1","ok":true,"value":3,"ms":0.002},
    {"id":"P-2","ok":false,"error":{...},"attempts":1,"ms":0.000}
    ]}

It is valid JSON, and the sink writes its lines out as they are with the header's task, worker
and producer added: writing each answer is done once, in the many worker processes, not in
the one sink. A dead letter, ``{"reason", "payload", "at"}`` plus what is known of ``id``,
``task``, ``error``, ``attempts``, ``producer``, is always about one task. Nothing here
touches Redis.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from redpool import codec
from redpool.envelope import (
    MAX_CHUNK,
    MAX_PAYLOAD,
    SHOWN,
    Unit,
    ids_of,
    item_payload,
    read_item,
    tasks_in,
)

_FRACTION = [f"{i:03d}" for i in range(1000)]
"""Milliseconds written from whole microseconds: a table lookup, not a float format."""
_BIG = 10**18
"""Integers below this are written with an f-string; bigger ones through the codec, which
refuses those past Python's digit limit (as not JSON) rather than raise ValueError."""
_PLAIN = re.compile(r"[A-Za-z0-9_.:\-]*")
"""Ids made of these need no escaping in JSON, so a run's ids are written as they are."""


def error(type_name: str, message: str, traceback: str = "") -> dict[str, str]:
    """An error description that always encodes: a lone surrogate in an exception's message
    (a task's own garbage) is escaped rather than allowed to break the result."""
    return {"type": _text(type_name), "message": _text(message), "traceback": _text(traceback)}


def _text(s: str) -> str:
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _ms(ms: float) -> str:
    micros = int(ms * 1000)
    return f"{micros // 1000}.{_FRACTION[micros % 1000]}"


def _json(value: Any) -> str:
    """``value`` as JSON text; raises NotJSON (NaN, sets, ...)."""
    kind = type(value)
    if kind is int and -_BIG < value < _BIG:
        return f"{value}"  # as JSON writes it; bigger ones through the codec (digit limit)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is float and not math.isfinite(value):
        raise codec.NotJSON("NaN and Infinity are not JSON")
    return codec.dumps(value).decode()


class Answers:
    """The answers to one element of the tasks list, written as they come."""

    def __init__(self, name: str, producer: str | None, worker: str, rerun: int = 0) -> None:
        self.name, self.producer, self.worker = name, producer, worker
        self.rerun = rerun
        """Which re-run of its id a single task is (``dead retry``): its answer says so."""
        self.lines: list[str] = []
        self.ok = self.failed = 0
        self._task = codec.dumps(name).decode()
        plain = producer is not None and _PLAIN.fullmatch(producer) is not None
        self._prefix = f"{producer}-" if plain else None

    def ran(self, number: int, value: Any, ms: float) -> None:
        """A task of a run (its id: the producer's and ``number``) that returned; raises
        NotJSON when ``value`` cannot be written. The path nearly every task takes."""
        if self._prefix is None:
            self.value(f"{self.producer}-{number}", value, ms)
            return
        self.lines.append(
            f'{{"id":"{self._prefix}{number}","ok":true,"value":{_json(value)},"ms":{_ms(ms)}}}'
        )
        self.ok += 1

    def value(self, task_id: str, value: Any, ms: float, attempts: int = 0) -> None:
        """A task that returned; raises NotJSON when ``value`` cannot be written."""
        written = _json(value)
        tried = f',"attempts":{attempts}' if attempts else ""
        self.lines.append(
            f'{{"id":{_id(task_id)},"ok":true,"value":{written}{tried},"ms":{_ms(ms)}}}'
        )
        self.ok += 1

    def error(self, task_id: str, err: dict[str, str], ms: float, attempts: int) -> None:
        """A task that failed for good."""
        self.lines.append(
            f'{{"id":{_id(task_id)},"ok":false,"error":{_json(err)},"attempts":{attempts},'
            f'"ms":{_ms(ms)}}}'
        )
        self.failed += 1

    def dead(
        self,
        unit: Unit,
        item: list[Any],
        err: dict[str, str],
        reason: str,
        attempts: int,
        ms: float = 0.0,
    ) -> bytes:
        """A task of ``unit`` that failed for good: its error answer, and (returned) its dead
        letter, always together. ``item`` is [id, args, kwargs?, attempts?] as it came."""
        task_id, args, kwargs, tried = read_item(item)
        payload = unit.raw if unit.single else item_payload(unit, task_id, args, kwargs, tried)
        self.error(task_id, err, ms, attempts)
        return encode_dead(
            payload,
            reason,
            task_id=task_id,
            name=unit.task,
            err=err,
            attempts=attempts,
            worker=self.worker,
        )

    def element(self, single: bool) -> bytes:
        """The element of the results list: the one answer of a single task, else a chunk's."""
        if single and len(self.lines) == 1:
            tail = shared(self.name, self.worker, self.producer)
            if self.rerun:
                tail = f',"rerun":{self.rerun}' + tail
            return (self.lines[0][:-1] + tail).encode()
        head = f'{{"n":{len(self.lines)},"task":{self._task}'
        if self.producer is not None:
            head += f',"producer":{_id(self.producer)}'
        head += f',"worker":{_id(self.worker)},"ok":{self.ok},"failed":{self.failed},"results":[\n'
        return (head + ",\n".join(self.lines) + "\n]}").encode()


def _id(text: str) -> str:
    return codec.dumps(text).decode()


def shared(name: Any, worker: Any, producer: Any) -> str:
    """The end of a result line: the fields all answers of a chunk share."""
    tail = f',"task":{codec.dumps(name).decode()},"worker":{codec.dumps(worker).decode()}'
    if producer is not None:
        tail += f',"producer":{codec.dumps(producer).decode()}'
    return tail + "}"


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
        body["payload"] = raw[:SHOWN].decode("utf-8", "replace")
        body["truncated"] = len(raw)
    else:
        body["payload"] = raw.decode("utf-8", "replace")
    return codec.dumps(body)


@dataclass(frozen=True)
class Rejected:
    """What is written for an element that is not a task or chunk we can run."""

    letter: bytes
    """Its dead letter: one for the element as a whole."""
    results: list[bytes]
    """Error answers for its tasks that have an id (none when none has)."""
    answered: int


_REPLY_FIELD = re.compile(rb'"reply":\s*"([A-Za-z0-9_.:\-]{1,200})"')


def reply_in(raw: bytes) -> str | None:
    """The caller an element answers (its ``reply``), read from its two ends without parsing
    it: an element that cannot be parsed still answers its caller."""
    found = _REPLY_FIELD.search(raw[:4096]) or _REPLY_FIELD.search(raw[-4096:])
    return found.group(1).decode() if found else None


def route(results: list[bytes], reply: str | None, out: Outcome) -> None:
    """Answer elements into the outcome: to the reply list of the caller they answer (a
    `redpool.Pool` or `redpool.Executor`), else to the results list."""
    if reply is None:
        out.results.extend(results)
        return
    out.replies.setdefault(reply, []).extend(results)
    out.replied += sum(tasks_in(r) for r in results)


def rejection(raw: bytes, reason: str, worker: str) -> Rejected:
    """A payload that is not a task we can run: its dead letter, and error answers for the
    tasks in it that have an id, so a submitted task that names an unknown task or comes in a
    broken chunk still completes the run."""
    ids, name, producer = ids_of(raw)
    single = len(ids) == 1 and not raw.startswith(b'{"n":')
    letter = encode_dead(raw, reason, task_id=ids[0] if single else None, name=name, worker=worker)
    err = error("PayloadError", reason)
    results = []
    for at in range(0, len(ids), MAX_CHUNK):
        answers = Answers(name or "", producer, worker)
        for answered in ids[at : at + MAX_CHUNK]:
            answers.error(answered, err, 0.0, 0)
        results.append(answers.element(single))
    return Rejected(letter, results, len(ids))


@dataclass
class Outcome:
    """What one batch writes back: answers, dead letters, retries, the tasks not started
    (back to the head of the queue), the time per task of each task name (for producers
    sizing chunks), and the counters it moves."""

    results: list[bytes] = field(default_factory=list)
    replies: dict[str, list[bytes]] = field(default_factory=dict)
    """Caller id -> answers for its reply list (elements that named a ``reply``)."""
    replied: int = 0
    """Of ``ok`` and ``failed``, the answers in ``replies``."""
    dropped: int = 0
    """Tasks not run because the caller they answer is gone."""
    dead: list[bytes] = field(default_factory=list)
    retries: list[tuple[int, bytes]] = field(default_factory=list)
    """(delay in ms, task envelope) pairs."""
    later: list[tuple[int, bytes]] = field(default_factory=list)
    """(delay in ms, element) pairs: elements of a task this worker does not have, given
    back through the delayed set for a host that has it (a rolling upgrade)."""
    back: list[bytes] = field(default_factory=list)
    """Elements with the tasks this batch did not start, in queue order."""
    pace: dict[str, float] = field(default_factory=dict)
    """Task name -> microseconds per task in this batch."""
    ok: int = 0
    failed: int = 0
    started: int = 0
    """Tasks started (run, whatever their ending)."""
    stopped_at: int | None = None
    """Position (in tasks, across the batch) of the first task not started, if any was not."""


# -- what the sink reads ---------------------------------------------------------------------

_UNREAD: Any = object()


class ResultEnvelope:
    """One task's answer as the sink hands it on: ``raw`` is the JSON line it writes. Its id
    and outcome are read from the line only when asked for (a file output never asks)."""

    __slots__ = ("_body", "_id", "producer", "raw")

    def __init__(self, raw: bytes, producer: str | None, task_id: Any = _UNREAD) -> None:
        self.raw = raw
        self.producer = producer
        self._id = task_id
        self._body: Any = _UNREAD

    @property
    def body(self) -> dict[str, Any]:
        """The answer as a dict ({} when it is not a JSON object)."""
        if self._body is _UNREAD:
            try:
                body = codec.loads(self.raw)
            except codec.JSONDecodeError:
                body = {}
            self._body = body if isinstance(body, dict) else {}
        return cast(dict[str, Any], self._body)

    @property
    def id(self) -> str | None:
        if self._id is _UNREAD:
            found = self.body.get("id")
            self._id = found if isinstance(found, str) else None
        return cast(str | None, self._id)

    @property
    def ok(self) -> bool:
        return self.body.get("ok") is True


class Answered:
    """An element of the results list, read by the sink: one line per task's answer, and the
    counts the sink keeps. (A plain class: the sink makes one per element, and for single
    results that is once per task.)"""

    __slots__ = ("failed", "ids", "lines", "ok", "producer")

    def __init__(
        self,
        lines: list[bytes],
        ok: int,
        failed: int,
        producer: str | None,
        ids: list[str | None] | None = None,
    ) -> None:
        self.lines, self.ok, self.failed = lines, ok, failed
        self.producer = producer
        """Who submitted these tasks; None for strays pushed by hand."""
        self.ids = ids
        """Their ids, where they were read anyway (a single result); else read when asked."""

    def results(self) -> Iterator[ResultEnvelope]:
        for index, line in enumerate(self.lines):
            known = self.ids[index] if self.ids is not None else _UNREAD
            yield ResultEnvelope(line, self.producer, known)


def parse_results(raw: bytes) -> Answered:
    """An element of the results list, as the sink reads it: a single result is one line as
    it is; a chunk's answers are its lines (see `Answers`), split out without parsing them.
    Lenient on purpose: what is not ours is passed on as it is, as one line."""
    if raw.startswith(b'{"n":'):
        head, _, rest = raw.partition(b"\n")
        try:
            body = codec.loads(head + b"]}")
            producer = body.get("producer")
            tail = shared(body.get("task", ""), body.get("worker", ""), producer).encode()
            # Each answer ends "}" and, but for the last, ",\n"; no value holds a raw
            # newline (JSON escapes it), so one replace gives every line its tail at once.
            lines = (
                (rest[:-4].replace(b"},\n", tail + b"\n") + tail).split(b"\n")
                if rest.endswith(b"}\n]}")
                else []
            )
            if body["n"] != len(lines) or (not lines and rest != b"]}"):
                raise ValueError
            return Answered(
                lines,
                int(body["ok"]),
                int(body["failed"]),
                producer if isinstance(producer, str) else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    task_id, ok, producer = parse_result(raw)
    return Answered([one_line(raw)], int(ok), int(not ok), producer, [task_id])


def one_line(raw: bytes) -> bytes:
    """An element that is not ours as one line of the sink's output: as it is unless it
    spans lines (a stray pushed by hand), then JSON written again on one line, or (not
    JSON) the text as a JSON string, so the output stays one JSON value per line."""
    if b"\n" not in raw:
        return raw
    try:
        return codec.dumps(codec.loads(raw))
    except (codec.JSONDecodeError, codec.NotJSON):
        return codec.dumps(raw.decode("utf-8", "replace"))


def parse_result(raw: bytes) -> tuple[str | None, bool, str | None]:
    """A single result's (id, outcome, producer); lenient, as the sink must pass on whatever
    is in the results list. Plain orjson is exact enough here: only these three fields are
    read (a big integer inside the value, which it would round, is not)."""
    try:
        body = orjson.loads(raw)
    except codec.JSONDecodeError:
        return None, False, None
    if not isinstance(body, dict):
        return None, False, None
    task_id, producer = body.get("id"), body.get("producer")
    return (
        task_id if isinstance(task_id, str) else None,
        body.get("ok") is True,
        producer if isinstance(producer, str) else None,
    )
