"""``@task`` and the name -> function table a worker runs from.

A worker runs only functions found under ``@task`` in the tasks module it was started with.
The name in a payload is a key into that table and nothing more: it is never imported or
looked up anywhere else, so a payload cannot make a worker run code it was not given.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, overload

from redpool.errors import ConfigError

CRASH_ATTEMPTS = 3
"""Attempts a task gets when its process dies or it times out, if ``retries`` allows fewer:
a crash may be the machine's fault, but a poison task must not kill workers forever."""


@dataclass(frozen=True)
class Task:
    """A registered task function; calling it calls the function, in this process."""

    fn: Callable[..., Any]
    name: str
    retries: int = 0
    backoff: float = 1.0
    backoff_max: float = 300.0
    timeout: float | None = None

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        """Pickled as where it is defined, like a function: a script that hands its tasks to
        `multiprocessing.Pool` as well as to `redpool.Pool` works with both."""
        return (_defined, (self.fn.__module__, self.fn.__qualname__))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def max_attempts(self) -> int:
        """Attempts when the task raises: exceptions are usually deterministic."""
        return self.retries + 1

    @property
    def max_crash_attempts(self) -> int:
        """Attempts when the process died or the task timed out."""
        return max(self.retries + 1, CRASH_ATTEMPTS)

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff with jitter (half to full), so retries of a burst spread out."""
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** max(attempts - 1, 0))
        return float(ceiling * random.uniform(0.5, 1.0))

    def arguments_fit(self, args: list[Any], kwargs: dict[str, Any]) -> bool:
        """Asked only after a TypeError, to tell bad arguments from a bug inside the task."""
        try:
            inspect.signature(self.fn).bind(*args, **kwargs)
        except TypeError:
            return False
        except ValueError:  # no signature (a builtin): give the task the benefit of the doubt
            return True
        return True


@overload
def task(fn: Callable[..., Any], /) -> Task: ...
@overload
def task(
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Task]: ...
def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
) -> Task | Callable[[Callable[..., Any]], Task]:
    """Mark a function as a task: ``@task`` or ``@task(name=..., retries=..., timeout=...)``.

    ``retries``: extra attempts when the task raises (default none; most errors repeat).
    ``backoff``: seconds before the first retry, doubling each time, with jitter.
    ``timeout``: seconds a single attempt may run; the worker's default applies otherwise.
    """
    if retries < 0 or backoff < 0 or (timeout is not None and timeout <= 0):
        raise ConfigError("task retries and backoff must be >= 0, timeout > 0")

    def wrap(f: Callable[..., Any]) -> Task:
        return Task(f, name or f.__name__, retries, backoff, timeout=timeout)

    return wrap(fn) if fn is not None else wrap


class Registry:
    """The tasks one worker may run, by name."""

    def __init__(self, tasks: list[Task]) -> None:
        self._tasks: dict[str, Task] = {}
        for t in tasks:
            if t.name in self._tasks and self._tasks[t.name] is not t:
                raise ConfigError(f"two tasks are named {t.name!r}")
            self._tasks[t.name] = t

    def get(self, name: str) -> Task | None:
        return self._tasks.get(name)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    @classmethod
    def from_module(cls, module: ModuleType) -> Registry:
        found = [v for v in vars(module).values() if isinstance(v, Task)]
        if not found:
            raise ConfigError(f"tasks module {module.__name__!r} has no @task functions")
        return cls(found)

    @classmethod
    def load(cls, spec: str) -> Registry:
        """From a dotted module name (found from the current directory too) or a .py path."""
        return cls.from_module(import_tasks_module(spec))


def import_tasks_module(spec: str) -> ModuleType:
    """Import the user's tasks module; every failure becomes one ConfigError line."""
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"tasks module file {spec!r} does not exist")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"cannot load tasks module from {spec!r}")
        if path.stem in sys.modules:
            raise ConfigError(
                f"tasks module file {spec!r} would replace the module {path.stem!r} that is "
                "already loaded; give the file another name"
            )
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's module's
            del sys.modules[path.stem]
            raise ConfigError(f"tasks module {spec!r} failed to import: {exc!r}") from None
        return module
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise ConfigError(f"tasks module {spec!r} not found (is it on PYTHONPATH?)") from None
        raise ConfigError(f"tasks module {spec!r} failed to import: {exc!r}") from None
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module's
        raise ConfigError(f"tasks module {spec!r} failed to import: {exc!r}") from None


def _defined(module: str, qualname: str) -> Any:
    """The object at ``module``.``qualname`` (a `Task`, unpickled)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
