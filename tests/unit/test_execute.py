"""The executor: every way a task can end becomes data, never an exception in the loop."""

from __future__ import annotations

import sys
import time

import orjson
import pytest

from redpool import task
from redpool.answers import Outcome
from redpool.envelope import encode_task, parse_unit
from redpool.errors import TaskTimeout
from redpool.registry import Registry
from redpool.workers.execute import Executor
from redpool.workers.slots import Slot


@task
def double(x: int) -> int:
    return 2 * x


@task
def broken(x: int) -> int:
    raise KeyError(x)


@task(retries=2, backoff=0.01)
def retried(x: int) -> int:
    raise RuntimeError("again")


@task
def typo_inside(x: int) -> int:
    return len(x)  # type: ignore[arg-type]  # a TypeError from inside the task


@task
def gives_a_set() -> object:
    return {1}


@task
def times_out() -> None:
    raise TaskTimeout


REG = Registry([double, broken, retried, typo_inside, gives_a_set, times_out])


def run(*payloads: bytes) -> Outcome:
    """One batch through a fresh executor that has timed every task already (a child stops
    a batch before a task it has not timed yet; these tests are about each task's ending)."""
    executor = Executor(REG, "w", Slot())
    executor.pace = {t.name: 0.0 for t in REG}
    return executor.run_batch(list(payloads))


def t(name: str, *args: object, attempts: int = 0, **kwargs: object) -> bytes:
    body = orjson.loads(encode_task(f"id-{name}", name, list(args), kwargs, producer="p"))
    if attempts:
        body["attempts"] = attempts
    return orjson.dumps(body)


def test_ok_result() -> None:
    out = run(t("double", 21))
    assert out.ok == 1 and out.failed == 0 and not out.dead and not out.retries
    result = orjson.loads(out.results[0])
    assert result["value"] == 42 and result["ok"] is True and result["producer"] == "p"


def test_a_raise_is_not_retried_by_default_and_ends_dead_with_an_error_result() -> None:
    out = run(t("broken", 1))
    result = orjson.loads(out.results[0])
    assert result["ok"] is False and result["error"]["type"] == "KeyError"
    assert "Traceback" in result["error"]["traceback"]
    letter = orjson.loads(out.dead[0])
    assert letter["id"] == "id-broken" and "failed after 1 attempt" in letter["reason"]
    assert out.failed == 1


def test_retries_go_through_the_delayed_set_until_the_last_attempt() -> None:
    out = run(t("retried", 1))
    assert not out.results and not out.dead
    ((delay_ms, payload),) = out.retries
    assert 0 <= delay_ms <= 10
    assert orjson.loads(payload)["attempts"] == 1
    last = run(t("retried", 1, attempts=2))
    assert not last.retries and len(last.dead) == 1
    assert orjson.loads(last.results[0])["attempts"] == 3


def test_wrong_arguments_are_dead_at_once_but_a_type_error_inside_is_a_failure() -> None:
    out = run(t("double", 1, 2, 3))
    assert "wrong arguments" in orjson.loads(out.dead[0])["reason"]
    inside = run(t("typo_inside", 5))
    assert "failed after 1 attempt: TypeError" in orjson.loads(inside.dead[0])["reason"]


def test_unknown_task_is_rejected_never_imported() -> None:
    executor = Executor(REG, "w", Slot(), unknown_wait=0)
    out = executor.run_batch([t("os.system", "echo pwned")])
    letter = orjson.loads(out.dead[0])
    assert "unknown task 'os.system'" in letter["reason"]
    assert orjson.loads(out.results[0])["id"] == "id-os.system"
    assert "os.system" not in sys.modules


def test_an_unknown_task_goes_back_for_another_host_until_its_wait_is_over() -> None:
    """A rolling upgrade: a host without the task name gives the element back through the
    delayed set, marked with its first refusal, which later refusals keep; once the wait is
    over since then, a host still without it makes it dead, answered."""
    executor = Executor(REG, "w", Slot(), unknown_wait=300)
    chunk = b'{"n":2,"task":"nope","producer":"p","first":1,"args":[[1],[2]]}'
    before = int(time.time() * 1000)
    out = executor.run_batch([chunk, t("os.system", "echo pwned")])
    assert not out.results and not out.dead and out.ok == out.failed == 0
    assert [delay for delay, _ in out.later] == [1000]  # the batch stops before the next
    body = orjson.loads(out.later[0][1])
    assert before <= body["refused"] <= time.time() * 1000
    assert parse_unit(out.later[0][1]).count == 2  # still a chunk Redis counts by its "n"
    again = executor.run_batch([out.later[0][1]]).later
    assert orjson.loads(again[0][1])["refused"] == body["refused"]
    body["refused"] -= 300_001
    late = executor.run_batch([orjson.dumps(body)])
    assert not late.later and len(late.dead) == 2 and late.failed == 2
    assert "no worker that took it in 300 s" in orjson.loads(late.dead[0])["reason"]
    assert "os.system" not in sys.modules


def test_garbage_without_an_id_is_only_dead_lettered() -> None:
    out = run(b"\x00\x01garbage", b"[]", t("double", 1))
    assert len(out.dead) == 2 and out.ok == 1 and len(out.results) == 1


def test_a_result_json_cannot_hold_is_an_error() -> None:
    out = run(t("gives_a_set"))
    assert orjson.loads(out.results[0])["error"]["type"] == "ResultNotJSON"


def test_a_timeout_is_a_crash_type_failure_retried_up_to_the_crash_limit() -> None:
    out = run(t("times_out"))
    assert orjson.loads(out.retries[0][1])["attempts"] == 1
    last = run(t("times_out", attempts=2))
    assert orjson.loads(last.results[0])["error"]["type"] == "TaskTimeout"


def test_alarm_raises_only_inside_task_code_past_the_deadline() -> None:
    slot = Slot()
    ex = Executor(REG, "w", slot)
    frame = sys._getframe()
    ex.on_alarm(14, frame)  # no task running: ignored
    slot.start(0, time.monotonic(), 1e-9)
    with pytest.raises(TaskTimeout):
        ex.on_alarm(14, frame)  # this test's frame stands for task code
    import redpool.workers.execute as ours

    class FakeCode:
        co_filename = ours.__file__

    class FakeFrame:
        f_code = FakeCode()

    ex.on_alarm(14, FakeFrame())  # type: ignore[arg-type]  # in our own code: never
    slot.finish()


def test_a_rerun_keeps_its_mark_through_retries_into_its_result_and_dead_letter() -> None:
    """A re-run's ``"rerun": K`` goes with its retry, its error result and its dead letter,
    so the next ``dead retry`` makes it K + 1 and a reader tells its result from the first."""
    rerun = orjson.dumps({**orjson.loads(t("retried", 1)), "rerun": 2})
    ((_, again),) = run(rerun).retries
    assert orjson.loads(again)["rerun"] == 2 and orjson.loads(again)["attempts"] == 1
    last = run(orjson.dumps({**orjson.loads(again), "attempts": 2}))
    assert orjson.loads(last.results[0])["rerun"] == 2
    assert orjson.loads(orjson.loads(last.dead[0])["payload"])["rerun"] == 2
    ok = orjson.loads(run(orjson.dumps({**orjson.loads(t("double", 4)), "rerun": 1})).results[0])
    assert (ok["value"], ok["rerun"]) == (8, 1)
