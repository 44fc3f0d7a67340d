"""Task envelopes: the JSON a person reads in ``redis-cli``, and what workers run.

One element of the tasks list is one of three shapes:

* a single task: ``{"id", "task", "args", "kwargs", "producer"?, "attempts"?}``;
* a run: many tasks of one name from one producer, whose ids follow each other:
  ``{"n", "task", "producer", "first", "args": [args, ...]}``; the i-th task's id is
  ``<producer>-<first + i>``, the ids a producer gives anyway. Nothing per task but its
  arguments crosses Redis;
* a listed chunk, for tasks a run cannot hold (other ids, keyword arguments, attempts):
  ``{"n", "task", "producer"?, "items": [[id, args, kwargs?, attempts?], ...]}``.

``n`` comes first, so a script counts an element's tasks without parsing it (`tasks_in`).
Everything is encoded and parsed through `redpool.codec` (exact for big integers). Nothing
here touches Redis; the answers side is `redpool.answers`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from redpool import codec
from redpool.codec import NotJSON
from redpool.errors import PayloadError

MAX_PAYLOAD = 16 * 1024 * 1024
"""Bytes; a bigger task payload goes to the dead list instead of into a worker's memory."""
MAX_CHUNK = 5000
"""Most tasks one chunk holds: the producer never makes a bigger one, and a bigger one pushed
by hand is dead (its answers alone would be an element larger than a sane payload)."""
SHOWN = 2048
"""How much of an oversized payload a dead letter keeps, so the dead list stays small."""
REFUSED = "refused"
"""Field of an element given back by workers that do not have its task (a rolling upgrade):
when the first of them refused it, in ms since the epoch (that host's clock)."""
_COUNT = re.compile(rb'\{"n":(\d{1,9}),')
_STRING = rb'("(?:[^"\\\x00-\x1f]|\\.){1,512}")'
"""A JSON string of up to 512 characters, as bytes: what a field read without parsing holds."""
_HEAD_ID = re.compile(rb'\{\s*"id"\s*:\s*' + _STRING)
_FIELDS = {
    name: re.compile(b'"' + name + rb'"\s*:\s*' + _STRING) for name in (b"task", b"producer")
}
EDGE = 4096
"""Bytes at each end of an element that cannot be parsed in which its fields are looked for."""


@dataclass(slots=True)
class TaskEnvelope:
    """A parsed single task; ``raw`` is the exact payload, for retries and dead letters.

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


@dataclass(slots=True)
class Unit:
    """One element of the tasks list as the executor runs it.

    A run keeps its arguments in ``args`` (ids from ``producer`` and ``first``); a single task
    or a listed chunk keeps [id, args, kwargs?, attempts?] items in ``items`` (a single task's
    one item made from its fields). Tasks are checked one by one as they run, so one bad task
    spoils no other.
    """

    task: str
    producer: str | None
    single: bool
    raw: bytes
    body: dict[str, Any]
    """The element as parsed, for writing it again with other tasks (`rebuild`)."""
    items: list[Any] | None = None
    args: list[Any] | None = None
    first: int = 0

    @property
    def count(self) -> int:
        return len(self.args if self.args is not None else self.items or ())

    def listed(self) -> list[Any]:
        """Its tasks as [id, args, ...] items, whatever its shape."""
        if self.args is None:
            return self.items or []
        prefix = f"{self.producer}-"
        return [[f"{prefix}{self.first + i}", args] for i, args in enumerate(self.args)]


def encode_task(
    task_id: str,
    name: str,
    args: list[Any] | tuple[Any, ...],
    kwargs: dict[str, Any],
    producer: str | None = None,
    attempts: int = 0,
) -> bytes:
    """A single task. Raises NotJSON when an argument is not JSON."""
    body: dict[str, Any] = {"id": task_id, "task": name, "args": args, "kwargs": kwargs}
    if producer is not None:
        body["producer"] = producer
    if attempts:
        body["attempts"] = attempts
    return codec.dumps(body)


def encode_run(name: str, producer: str, first: int, args: list[Any]) -> bytes:
    """A run of tasks; raises NotJSON when an argument is not JSON."""
    return codec.dumps(
        {"n": len(args), "task": name, "producer": producer, "first": first, "args": args}
    )


def encode_run_json(name: str, producer: str, first: int, args: list[bytes]) -> bytes:
    """`encode_run` from arguments already written as JSON arrays (lines of input, checked):
    nothing is parsed and written again."""
    head = b'{"n":%d,"task":%b,"producer":%b,"first":%d,"args":[' % (
        len(args),
        codec.dumps(name),
        codec.dumps(producer),
        first,
    )
    return head + b",".join(args) + b"]}"


def encode_listed(name: str, producer: str | None, items: list[list[Any]]) -> bytes:
    """A listed chunk; raises NotJSON when an argument is not JSON."""
    body: dict[str, Any] = {"n": len(items), "task": name}
    if producer is not None:
        body["producer"] = producer
    body["items"] = items
    return codec.dumps(body)


def encode_listed_json(name: str, producer: str, items: list[bytes]) -> bytes:
    """`encode_listed` from items already written as JSON ([id, args, kwargs?])."""
    head = b'{"n":%d,"task":%b,"producer":%b,"items":[' % (
        len(items),
        codec.dumps(name),
        codec.dumps(producer),
    )
    return head + b",".join(items) + b"]}"


def encode_task_json(
    id_json: bytes, name: str, args: bytes, kwargs: bytes | None, producer: str | None
) -> bytes:
    """`encode_task` from JSON that is already written."""
    body = b'{"id":%b,"task":%b,"args":%b,"kwargs":%b' % (
        id_json,
        codec.dumps(name),
        args,
        kwargs or b"{}",
    )
    if producer is not None:
        body += b',"producer":' + codec.dumps(producer)
    return body + b"}"


def tasks_in(raw: bytes) -> int:
    """How many tasks an element of the tasks or results list holds: a chunk's ``n`` (read
    from the front, without parsing the rest), else 1."""
    found = _COUNT.match(raw)
    return int(found.group(1)) if found else 1


def parse_unit(raw: bytes, max_size: int = MAX_PAYLOAD) -> Unit:
    """An element of the tasks list, whatever its shape; raises PayloadError with a reason a
    person can act on when the element as a whole is unusable."""
    body = _object(raw, max_size)
    if "args" in body and "first" in body:
        unit = _run(raw, body)
    elif "items" not in body:
        env = _task(raw, body)
        item = [env.id, env.args, env.kwargs, env.attempts]
        unit = Unit(env.task, env.producer, True, raw, body, items=[item])
    else:
        name, producer, items = _chunk_fields(raw, body, "items")
        unit = Unit(name, producer, False, raw, body, items=items)
    if tasks_in(raw) != unit.count:
        # Redis, the supervisor and the sink count an element's tasks by this prefix alone
        raise PayloadError(
            raw,
            f'a chunk must begin {{"n":{unit.count}, exactly so (its number of tasks, no '
            "spaces): what Redis counts it by"
            if not unit.single
            else 'a single task must not begin {"n":',
        )
    return unit


def _run(raw: bytes, body: dict[str, Any]) -> Unit:
    name, producer, args = _chunk_fields(raw, body, "args")
    first = body["first"]
    if not isinstance(producer, str) or not producer:
        raise PayloadError(raw, "a run's ids come from its 'producer': it must be a string")
    if type(first) is not int or first < 0:
        raise PayloadError(raw, "field 'first' of a run must be a non-negative integer")
    return Unit(name, producer, False, raw, body, args=args, first=first)


def _chunk_fields(raw: bytes, body: dict[str, Any], field: str) -> tuple[str, Any, list[Any]]:
    name, producer, tasks = body.get("task"), body.get("producer"), body[field]
    if not isinstance(name, str) or not name:
        raise PayloadError(raw, "field 'task' must be a non-empty string")
    if producer is not None and not isinstance(producer, str):
        raise PayloadError(raw, "field 'producer' must be a string")
    if not isinstance(tasks, list):
        raise PayloadError(raw, f"field '{field}' of a chunk must be a JSON array")
    if len(tasks) > MAX_CHUNK:
        raise PayloadError(raw, f"a chunk of {len(tasks)} tasks exceeds the {MAX_CHUNK}-task limit")
    return name, producer, tasks


def rebuild(unit: Unit, items: list[list[Any]]) -> bytes:
    """The element again with these tasks (some attempts counted up, some gone), as a listed
    chunk, or the single task again; every other field kept as it was. Raises NotJSON when a
    task cannot be written again."""
    if unit.single:
        ((task_id, args, kwargs, attempts),) = items
        body = {**unit.body, "id": task_id, "args": args, "kwargs": kwargs}
        body.pop(REFUSED, None)  # ran: a host had its task
        if attempts:
            body["attempts"] = attempts
        else:
            body.pop("attempts", None)
        return codec.dumps(body)
    dropped = ("n", "items", "args", "first", REFUSED)
    fields = {k: v for k, v in unit.body.items() if k not in dropped}
    return codec.dumps({"n": len(items), **fields, "items": items})


def read_item(item: Any) -> tuple[str, list[Any], dict[str, Any], int]:
    """(id, args, kwargs, attempts) of a listed item; raises ItemError saying what is wrong,
    with the item's id when it has one (so it can still be answered)."""
    if type(item) is not list or not 2 <= len(item) <= 4:
        raise ItemError("a chunk item must be [id, args, kwargs?, attempts?]", None)
    task_id = item[0]
    if type(task_id) is not str or not task_id:
        raise ItemError("an item's id must be a non-empty string", None)
    args = item[1]
    kwargs = item[2] if len(item) > 2 else {}
    attempts = item[3] if len(item) > 3 else 0
    if type(args) is not list:
        raise ItemError("an item's args must be a JSON array", task_id)
    if type(kwargs) is not dict:
        raise ItemError("an item's kwargs must be a JSON object", task_id)
    if type(attempts) is not int or attempts < 0:
        raise ItemError("an item's attempts must be a non-negative integer", task_id)
    return task_id, args, kwargs, attempts


class ItemError(Exception):
    """One task of a chunk is not usable; ``task_id`` when it can still be answered."""

    def __init__(self, reason: str, task_id: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.task_id = task_id


def _object(raw: bytes, max_size: int) -> dict[str, Any]:
    if len(raw) > max_size:
        raise PayloadError(raw, f"payload of {len(raw)} bytes exceeds the {max_size} byte limit")
    try:
        body = codec.loads(raw)
    except codec.JSONDecodeError as exc:
        raise PayloadError(raw, f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError(raw, f"a task must be a JSON object, not {type(body).__name__}")
    return body


def parse_task(raw: bytes, max_size: int = MAX_PAYLOAD) -> TaskEnvelope:
    """A single task; raises PayloadError with a reason a person can act on."""
    return _task(raw, _object(raw, max_size))


def _task(raw: bytes, body: dict[str, Any]) -> TaskEnvelope:
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


def ids_of(raw: bytes) -> tuple[list[str], str | None, str | None]:
    """(the ids it holds, its task name, its producer) of an element that failed to parse
    as a whole, where they can be read: a submitted task in a broken element still gets an
    error answer under its id, so the run completes instead of waiting for it for ever.

    Read leniently, since the element was refused for what it holds, not for its ids (NaN,
    a lone surrogate beside a big integer, nesting past a parser's limit), and one over the
    size limit is not parsed at all: then its fields are read from its two ends (`_edges`).
    Only what can be written back in an answer is returned."""
    body = _lenient(raw) if len(raw) <= MAX_PAYLOAD else None
    if not isinstance(body, dict):
        body = _run_head(raw) or _edges(raw)
    name, producer = _text(body.get("task")), _text(body.get("producer"))
    task_id, items, args, first = (
        body.get("id"),
        body.get("items"),
        body.get("args"),
        body.get("first"),
    )
    if (single := _text(task_id)) is not None:
        return [single], name, producer
    if isinstance(items, list):
        ids = [i[0] for i in items if isinstance(i, list) and i and _text(i[0])]
        return ids, name, producer
    if type(first) is int and producer:  # a run: its ids are known from its count alone
        n = body.get("n")
        count = len(args) if isinstance(args, list) else n if type(n) is int else 0
        return [f"{producer}-{first + i}" for i in range(min(count, MAX_CHUNK))], name, producer
    return [], name, producer


def _text(value: Any) -> str | None:
    """``value`` when it is a non-empty string an answer can hold (no lone surrogate)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return None
    return value


def _lenient(raw: bytes) -> Any:
    """``raw`` parsed as well as anything can, for its ids alone: strictly; else by orjson
    alone, which nests deeper than the exact path for big integers (rounding them, which
    ids do not mind); else by the standard library, which takes NaN and lone surrogates.
    None when none can (not JSON, nested too deeply)."""
    for parse in (codec.loads, orjson.loads, json.loads):
        try:
            return parse(raw)
        except (ValueError, RecursionError):
            continue
    return None


def _run_head(raw: bytes) -> dict[str, Any] | None:
    """The fields of a run that cannot be parsed, read from its head (a producer writes
    ``n``, ``task``, ``producer`` and ``first`` before ``args``): enough to answer its tasks."""
    head, found, _ = raw[:EDGE].partition(b',"args":[')
    if not found:
        return None
    try:
        body = codec.loads(head + b"}")
    except codec.JSONDecodeError:
        return None
    return body if isinstance(body, dict) and type(body.get("first")) is int else None


def _edges(raw: bytes) -> dict[str, Any]:
    """The fields of a single task that cannot be parsed, read without parsing it: its id
    when the element begins with it, its task name from its head, its producer from its tail
    (where producers write them; an oversize task's arguments lie between). Bounded regexes
    on the first and last `EDGE` bytes, so a 50 MB element costs what a small one does."""
    head, tail = raw[:EDGE], raw[-EDGE:]
    found: dict[str, Any] = {}
    if (match := _HEAD_ID.match(head)) is not None:
        found["id"] = _string(match.group(1))
    if (match := _FIELDS[b"task"].search(head)) is not None:
        found["task"] = _string(match.group(1))
    producers = _FIELDS[b"producer"].findall(tail)
    if producers:
        found["producer"] = _string(producers[-1])
    return found


def _string(written: bytes) -> str | None:
    try:
        value = codec.loads(written)
    except codec.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


def refused(unit: Unit, now_ms: int) -> bytes:
    """The element again, marked refused by a host that does not have its task: the first
    refusal's time is kept; every other field, and the order (``n`` first), as it was.
    Raises NotJSON when it cannot be written again."""
    first = unit.body.get(REFUSED)
    body = {**unit.body, REFUSED: first if type(first) is int else now_ms}
    return codec.dumps(body)


def refused_since(unit: Unit) -> int | None:
    """When a host first refused the element for not having its task (ms since the epoch)."""
    first = unit.body.get(REFUSED)
    return first if type(first) is int else None


_REPLY = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")


def reply_of(body: dict[str, Any]) -> str | None:
    """The caller an element answers, when its ``reply`` field names one whose reply list is
    ours to write: an id as `redpool.keys.instance_id` makes, nothing that could reach outside
    the pipeline's keys. None: its answers go to ``results``."""
    reply = body.get("reply")
    return reply if type(reply) is str and _REPLY.fullmatch(reply) else None


def with_reply(raw: bytes, unit: Unit) -> bytes:
    """A task taken out of ``unit`` (a chunk's, retried alone) keeps the caller it answers."""
    reply = unit.body.get("reply")
    if reply is None:
        return raw
    return codec.dumps({**codec.loads(raw), "reply": reply})


def rerun_of(body: dict[str, Any]) -> int:
    """Which re-run of its id a task is (0: the first run); a bad value counts as 0."""
    rerun = body.get("rerun", 0)
    return rerun if type(rerun) is int and rerun > 0 else 0


def as_rerun(raw: bytes, producer: str | None = None) -> bytes:
    """The same single task sent again by ``dead retry``: no attempts yet, and ``"rerun"``
    one more than before; a task a producer submitted names ``producer``, the re-run's own id
    in the run it joined (only those count toward a run's end); every other field kept.

    Raises NotJSON when the payload parses but cannot be written again (nesting deeper than
    the encoder allows): the caller keeps its dead letter."""
    body = codec.loads(raw)
    body.pop("attempts", None)
    body["rerun"] = rerun_of(body) + 1
    if producer is not None and body.get("producer") is not None:
        body["producer"] = producer
    return codec.dumps(body)


def item_payload(unit: Unit, task_id: str, args: Any, kwargs: Any, attempts: int) -> bytes:
    """A chunk's task as the single task it stands for, for its dead letter or its retry;
    as `shown` when it cannot be written as JSON again."""
    try:
        return encode_task(task_id, unit.task, args, kwargs, unit.producer, attempts)
    except NotJSON:
        return shown([task_id, args, kwargs, attempts])


def shown(value: Any) -> bytes:
    """A value that cannot be written as JSON, as a dead letter shows it: its repr, cut to
    `SHOWN` characters. repr recurses, and a value nested past the interpreter's limit (the
    JSON parser allows deeper nesting than repr can show) would raise in the very code that
    is dead-lettering it: a crash loop; it is named instead."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<a {type(value).__name__} nested too deeply to show>"
    return text[:SHOWN].encode("utf-8", "replace")


def split_at(held: list[bytes], position: int) -> tuple[list[bytes], list[bytes]]:
    """Cut a held batch before task ``position`` (counted across the batch): the elements with
    the tasks before it, and the elements with the tasks from it on. A chunk cut in two
    becomes two chunks; the same input always gives the same bytes, so the supervisor that
    hands the rest back and the child that commits the first part agree on both. Raises
    NotJSON when the chunk to cut cannot be written again, PayloadError when it is not a
    chunk that parses (the executor refused it as a whole: it is never cut)."""
    kept: list[bytes] = []
    for index, raw in enumerate(held):
        count = tasks_in(raw)
        if position >= count:
            kept.append(raw)
            position -= count
            continue
        if position == 0:
            return kept, held[index:]
        head, tail = _halves(parse_unit(raw, len(raw)), position)
        return [*kept, head], [tail, *held[index + 1 :]]
    return kept, []


def _halves(unit: Unit, position: int) -> tuple[bytes, bytes]:
    body = unit.body
    if unit.single:  # counted as one task: never cut inside
        raise PayloadError(unit.raw, "a single task cannot be cut")
    if unit.args is None:
        items = unit.items or []
        fields = {k: v for k, v in body.items() if k not in ("n", "items")}
        return (
            codec.dumps({"n": position, **fields, "items": items[:position]}),
            codec.dumps({"n": len(items) - position, **fields, "items": items[position:]}),
        )
    args, first = body["args"], body["first"]
    fields = {k: v for k, v in body.items() if k not in ("n", "args", "first")}
    return (
        codec.dumps({"n": position, **fields, "first": first, "args": args[:position]}),
        codec.dumps(
            {
                "n": len(args) - position,
                **fields,
                "first": first + position,
                "args": args[position:],
            }
        ),
    )
