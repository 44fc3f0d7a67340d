"""Where ``redpool sink`` writes: one JSON line per result, as the worker wrote it."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from typing import BinaryIO, Protocol, runtime_checkable

from redpool.answers import ResultEnvelope
from redpool.errors import ConfigError


@runtime_checkable
class Resumable(Protocol):
    """An output a restarted sink can cut back to where acknowledged results end, which is
    what makes it exactly-once: the sink records `mark` with each acknowledgement, in the
    same transaction, and hands the recorded mark to `cut_back` when it starts."""

    name: str
    """Which output this is, for the record: a file's absolute path and its identity (device
    and inode: the same on a restarted container whose volume holds it, another for a file
    recreated at that path, or another host's file of the same name)."""

    def mark(self) -> tuple[str, int]:
        """(name, bytes that hold what was written so far); called after a flush."""
        ...

    def size(self) -> int:
        """Bytes in the output now."""
        ...

    def cut_back(self, mark: int) -> int:
        """Drop what lies past ``mark``; returns the bytes cut."""
        ...


class JsonLines:
    """A handler that appends each result's JSON as one line; ``flush`` before each ack.

    The sink hands it a chunk's answers all at once (`write_lines`): one write of all the
    lines, and a line is never written in two pieces."""

    def __init__(self, stream: BinaryIO, fsync: bool = False) -> None:
        self.stream = stream
        self.fsync = fsync
        """Also fsync before each acknowledgement: the file then survives the machine
        crashing, not only the sink (a flush is enough for that)."""

    def __call__(self, result: ResultEnvelope) -> None:
        self.stream.write(result.raw + b"\n")

    def write_lines(self, lines: list[bytes]) -> None:
        self.stream.write(b"\n".join(lines) + b"\n")

    def flush(self) -> None:
        self.stream.flush()
        if self.fsync:
            os.fsync(self.stream.fileno())


class JsonLinesFile(JsonLines):
    """`JsonLines` to a file, exactly once (`Resumable`).

    Holds an exclusive flock on the file while open: a second sink on this host writing the
    same file (a standby that took over from a sink that stalled past its lease) waits until
    the first one is gone, so the two never interleave their batches."""

    def __init__(self, stream: BinaryIO, path: str, fsync: bool = False) -> None:
        super().__init__(stream, fsync)
        if not _locked(stream):
            raise ConfigError(f"output {path!r} is being written by another process")
        info = os.fstat(stream.fileno())
        self.name = f"{os.path.abspath(path)} {info.st_dev}:{info.st_ino}"

    def mark(self) -> tuple[str, int]:
        return self.name, self.stream.tell()

    def size(self) -> int:
        self.stream.flush()
        return os.fstat(self.stream.fileno()).st_size

    def cut_back(self, mark: int) -> int:
        self.stream.flush()
        size = os.fstat(self.stream.fileno()).st_size
        if size <= mark:
            return 0
        self.stream.truncate(mark)
        self.stream.seek(mark)
        return size - mark


def _locked(stream: BinaryIO, wait: float = 30.0) -> bool:
    """Take an exclusive flock, waiting up to ``wait`` seconds for another holder to go."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        except OSError:  # a file system without locks: go on without
            return True


def open_output(path: str, append: bool = True) -> BinaryIO:
    """``-`` is stdout; a file is appended to, so a restarted sink never truncates results
    (``redpool run``, a fresh run on a fresh Redis, starts the file anew)."""
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "ab" if append else "wb")
    except OSError as exc:
        raise ConfigError(f"cannot write output {path!r}: {exc.strerror}") from None
