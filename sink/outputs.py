"""Where ``redpool sink`` writes: one JSON line per result, as the worker wrote it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from typing import BinaryIO, Protocol, runtime_checkable

from redpool.answers import ResultEnvelope
from redpool.errors import ConfigError, OutputError


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

    def end_line(self) -> bool:
        """End a partial last line that is not ours; True when it did."""
        ...


class JsonLines:
    """A handler that appends each result's JSON as one line; ``flush`` before each ack.

    Each line goes to the stream in one write with its newline, and the sink hands it a
    chunk's answers all at once (`write_lines`): one write of all the lines. A line is never
    written in two pieces by us; one cut short by the system (a full disk, a kill inside a
    write) lies past the acknowledged mark, and a restarted sink cuts it off.

    A write that fails (a full disk, a closed pipe) is an `OutputError`: one line, and the
    batch is not acknowledged, so nothing is lost and a later sink writes it again."""

    def __init__(self, stream: BinaryIO, fsync: bool = False, path: str = "-") -> None:
        self.stream = stream
        self.fsync = fsync
        """Also fsync before each acknowledgement: the file then survives the machine
        crashing, not only the sink (a flush is enough for that)."""
        self.path = path

    def __call__(self, result: ResultEnvelope) -> None:
        try:  # inline, not `_writing`: a context manager costs a µs on the line-per-result path
            self.stream.write(result.raw + b"\n")
        except OSError as exc:
            raise self._failed(exc) from None

    def write_lines(self, lines: list[bytes]) -> None:
        with self._writing():
            self.stream.write(b"\n".join(lines) + b"\n")

    def flush(self) -> None:
        with self._writing():
            self.stream.flush()
            if self.fsync:
                os.fsync(self.stream.fileno())

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> OutputError:
        what = "stdout" if self.path == "-" else repr(self.path)
        return OutputError(
            f"cannot write results to {what}: {exc.strerror or exc}; they stay in Redis, "
            "unacknowledged, for the next sink"
        )


class JsonLinesFile(JsonLines):
    """`JsonLines` to a file, exactly once (`Resumable`).

    Holds an exclusive flock on the file while open: a second sink on this host writing the
    same file (a standby that took over from a sink that stalled past its lease) waits until
    the first one is gone, so the two never interleave their batches."""

    def __init__(self, stream: BinaryIO, path: str, fsync: bool = False) -> None:
        super().__init__(stream, fsync, path)
        if not _locked(stream):
            raise ConfigError(f"output {path!r} is being written by another process")
        info = os.fstat(stream.fileno())
        self.name = f"{os.path.abspath(path)} {info.st_dev}:{info.st_ino}"

    def mark(self) -> tuple[str, int]:
        return self.name, self.stream.tell()

    def size(self) -> int:
        self.flush()
        return os.fstat(self.stream.fileno()).st_size

    def end_line(self) -> bool:
        """A file that ends in a partial line (not ours: nothing of ours lies past our mark
        once `cut_back` ran) gets a newline, so our first result starts a line of its own
        rather than being glued onto it. True when one was added."""
        size = self.size()
        if size == 0:
            return False
        try:  # the stream is open for appending only
            with open(self.path, "rb") as reader:
                reader.seek(size - 1)
                if reader.read(1) in (b"\n", b""):
                    return False
        except OSError:
            return False
        with self._writing():
            self.stream.write(b"\n")
        self.flush()
        return True

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


def close_output(stream: BinaryIO) -> None:
    """Close a file output. Whatever it still buffers was never acknowledged, so a close that
    cannot write it (a full disk: the error was reported already) loses nothing."""
    with contextlib.suppress(OSError):
        stream.close()


def open_output(path: str, append: bool = True) -> BinaryIO:
    """``-`` is stdout; a file is appended to, so a restarted sink never truncates results
    (``redpool run``, a fresh run on a fresh Redis, starts the file anew)."""
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "ab" if append else "wb")
    except OSError as exc:
        raise ConfigError(f"cannot write output {path!r}: {exc.strerror}") from None
