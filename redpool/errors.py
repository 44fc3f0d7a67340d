"""One error hierarchy for everything redpool raises on purpose.

Library code raises these; only `redpool.cli` turns them into a one-line message and an exit
code. Names never shadow builtins (``ConnectionError`` would).
"""

from __future__ import annotations


class RedpoolError(Exception):
    """Root of every error redpool raises on purpose."""


class ConfigError(RedpoolError):
    """A bad URL, tasks module or input: the user has to change something."""


class SettingError(ConfigError):
    """A setting out of its range: a usage mistake, like a bad command-line option.

    ``setting`` is the field's name, so the CLI can name its option instead."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem


class OutputError(RedpoolError):
    """The sink could not write its output (a full disk): what it took stays unacknowledged."""


class RedisUnavailable(RedpoolError):
    """Redis could not be reached within the allowed wait."""


class RedisRefused(RedpoolError):
    """Redis answered with an error that a retry would get again (a command it refuses, a
    script error): not an outage, so nothing waits for it to pass.

    The message says where Redis is; ``reply`` is what it answered, for code that tells one
    reply from another."""

    def __init__(self, message: str, reply: str | None = None) -> None:
        super().__init__(message)
        self.reply = message if reply is None else reply


class TooLarge(RedisRefused):
    """Redis drops the connection on this request, again and again, while it answers others:
    a value over its proto-max-bulk-len or client-query-buffer-limit. Retrying cannot help."""


class Aborted(RedpoolError):
    """A retry loop gave up because its owner was told to stop at once (a second signal)."""


class StreamClosed(RedpoolError):
    """A producer tried to submit after it closed its stream."""


class RunIncomplete(RedpoolError):
    """A run ended without every producer finishing its input (``redpool run``: exit 3)."""


class SinkLeaseLost(RedpoolError):
    """This sink stalled past its lease and another sink took over the pipeline."""


class PayloadError(RedpoolError):
    """A payload read from Redis is not a valid envelope.

    Keeps the raw bytes so that the dead letter can show a person what was actually there.
    """

    def __init__(self, raw: bytes | str, reason: str) -> None:
        super().__init__(reason)
        self.raw = raw
        self.reason = reason


class TaskTimeout(BaseException):
    """Raised inside a running task when its time is up.

    A BaseException on purpose, outside RedpoolError: task code that says `except Exception`
    must not swallow its own timeout.
    """
