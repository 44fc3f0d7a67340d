"""@task and the registry: only registered functions ever run."""

from __future__ import annotations

import types

import pytest

from redpool import Task, task
from redpool.errors import ConfigError
from redpool.registry import CRASH_ATTEMPTS, Registry


def test_both_decorator_forms() -> None:
    @task
    def plain(x: int) -> int:
        return x + 1

    @task(name="renamed", retries=2, backoff=0.5, timeout=3)
    def configured(x: int) -> int:
        return x

    assert isinstance(plain, Task) and plain.name == "plain" and plain(1) == 2
    assert configured.name == "renamed" and configured.retries == 2
    assert configured.max_attempts == 3 and configured.timeout == 3
    assert plain.max_attempts == 1 and plain.max_crash_attempts == CRASH_ATTEMPTS


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    t = task(retries=5, backoff=1.0)(lambda: None)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        delays = [t.retry_delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    assert t.retry_delay(40) <= t.backoff_max


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        task(retries=-1)


def test_registry_finds_tasks_in_a_module_and_nothing_else() -> None:
    mod = types.ModuleType("m")
    mod.a = task(lambda: 1)  # type: ignore[attr-defined]
    mod.helper = lambda: 2  # type: ignore[attr-defined]
    reg = Registry.from_module(mod)
    assert reg.get("<lambda>") is not None
    assert reg.get("helper") is None
    assert reg.get("os.system") is None


def test_two_tasks_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="two tasks"):
        Registry([task(name="x")(lambda: 1), task(name="x")(lambda: 2)])


def test_loading_failures_are_one_line_config_errors(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Registry.load("no_such_module_anywhere")
    with pytest.raises(ConfigError, match="no @task"):
        Registry.load("json")
    with pytest.raises(ConfigError, match="does not exist"):
        Registry.load("/nonexistent/tasks.py")


def test_a_module_that_fails_to_import_is_reported(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "broken_tasks.py"  # type: ignore[operator]
    path.write_text("import no_such_dependency_xyz\n")
    with pytest.raises(ConfigError, match="failed to import"):
        Registry.load(str(path))


def test_arguments_fit() -> None:
    t = task(lambda a, b=1: a)
    assert t.arguments_fit([1], {}) and t.arguments_fit([1, 2], {})
    assert not t.arguments_fit([], {}) and not t.arguments_fit([1], {"c": 2})
