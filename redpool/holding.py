"""The fenced holding list: one mechanism for the workers and the sink.

A holder (a worker child, or the sink) marks its take with a token of its own in
``held:<holding>``, then moves elements from a source list (``tasks``, or ``results``) into a
list only it owns (``inflight:<host>:<child>``, or ``sinking``). Whatever kills the holder, the
elements are in its list, where a supervisor or a reaper finds them. When the holder is done
it settles: its writes (answers, dead letters, retries, counters) and the deletion of its list
happen in one transaction, and only if the token is still its own and the list still as long
as what it took. A reaper that gave the list back deleted the token, so a holder presumed dead
that finishes anyway writes nothing; a settle repeated after a lost reply finds the token
marked done and says so.

Settling is a native transaction (MULTI/EXEC under WATCH), not Lua, and a few elements move
with native LMOVEs: a script copies every argument and element it touches into Lua, which for
a chunk's answers of KBs costs Redis about three times what the same commands cost natively
(the README has the figures). Many small elements move with one script call (take.lua), where
the cost per command is what dominates.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis
from redis.client import Pipeline as Transaction
from redis.commands.core import Script

from redpool.keys import Keys

DONE = b"done:"
"""Prefix of a token whose settle went through (kept 10 minutes for a repeated settle)."""
DONE_MS = 600_000


@dataclass(frozen=True)
class Taken:
    """What a holder holds, and the token its settle is fenced on."""

    held: list[bytes]
    token: bytes
    leased: bool = True
    """False when the holder's host had lost its lease: nothing was taken (see fence.lua)."""
    holding: str = ""
    """The list that holds them (a sharded pipeline's take says which shard's it is)."""


NATIVE_MOVES = 16
"""A take of up to this many elements moves them with native LMOVEs; more, with take.lua.

Few elements per take means big ones (chunks: a holder sizes its takes by time, and a chunk
is much work), which a script would copy into Lua and back; many means small ones (single
tasks), where the cost per command dominates and one script call beats many commands."""


def take(
    client: redis.Redis,
    keys: Keys,
    source: str,
    holding: str,
    count: int,
    block: float | None,
    many: Script,
    lease: Lease | None = None,
) -> Taken:
    """Move up to ``count`` elements from ``source`` into ``holding``, in one round trip; with
    ``block`` (seconds) and none to move, wait for one (BLMOVE) so an idle holder wakes at once.

    What the holding list already held comes back too: a take whose reply was lost to a
    dropped connection is repeated, and its elements are not lost or left behind.

    With ``lease`` (a worker child's take) the moves and fence.lua run in one MULTI/EXEC: if
    the host's lease is gone, the take is undone in the same step, and `Taken.leased` is
    False. An element BLMOVE brings is fenced the same way, one round trip later.
    """
    token = secrets.token_hex(8).encode()
    look = client.pipeline(transaction=lease is not None)
    look.set(keys.held(holding), token)  # first: whatever comes in below is under this token
    look.lrange(holding, 0, -1)
    if count > NATIVE_MOVES:
        look.evalsha(many.sha, 2, source, holding, count)
    else:
        for _ in range(count):
            look.lmove(source, holding, "LEFT", "RIGHT")
    if lease is not None:
        lease.queue(look, keys, source, holding)
    try:
        replies = look.execute()
    except redis.exceptions.NoScriptError:  # Redis restarted: load them, and look again
        client.script_load(many.script)
        if lease is not None:
            client.script_load(lease.fence.script)
        # Native moves before a missing fence.lua went through (an error in a MULTI stops only
        # its own command) and are held now: move none more. A missing take.lua moved none.
        again = count if count > NATIVE_MOVES else 0
        return take(client, keys, source, holding, again, block, many, lease)
    if lease is not None and not replies.pop():
        return Taken([], token, leased=False)
    before = cast(list[bytes], replies[1])
    moved = (
        replies[2] if count > NATIVE_MOVES else [item for item in replies[2:] if item is not None]
    )
    held = before + cast(list[bytes], moved)
    if held or block is None:
        return Taken(held, token)
    # execute_command: redis-py's blmove() is typed for whole seconds only
    item = client.execute_command(  # type: ignore[no-untyped-call]
        "BLMOVE", source, holding, "LEFT", "RIGHT", block
    )
    if item is None:
        return Taken([], token)
    if lease is not None and not lease.holds(client, keys, source, holding):
        return Taken([], token, leased=False)
    return Taken([item], token)


@dataclass(frozen=True)
class Lease:
    """What a worker child's take is fenced on: its host's lease (see fence.lua)."""

    host: str
    fence: Script

    def queue(self, pipe: Transaction, keys: Keys, source: str, holding: str) -> None:
        """fence.lua, queued in a take's pipeline after its moves."""
        pipe.evalsha(self.fence.sha, 4, keys.leases, holding, source, keys.held(holding), self.host)

    def holds(self, client: redis.Redis, keys: Keys, source: str, holding: str) -> bool:
        """fence.lua on its own: True while the lease holds (else ``holding`` went back)."""
        args = (keys.leases, holding, source, keys.held(holding), self.host)
        try:
            return bool(client.evalsha(self.fence.sha, 4, *args))
        except redis.exceptions.NoScriptError:  # Redis restarted (or flushed its scripts)
            client.script_load(self.fence.script)
            return bool(client.evalsha(self.fence.sha, 4, *args))


def settle(
    client: redis.Redis,
    keys: Keys,
    holding: str,
    taken: Taken,
    count: int,
    write: Callable[[Transaction], None],
    fence: Script,
) -> int:
    """Delete ``holding`` and run ``write`` (which queues the holder's writes) in one
    transaction, if the holder still holds what it took (its token, ``count`` elements).

    Returns 1 when written, 2 when this settle had already gone through (a reply lost), 0
    when the list was given back meanwhile (fenced: nothing is written).
    """
    marker = keys.held(holding)

    def attempt(pipe: Transaction) -> int:
        state, length = _look(client, pipe, fence, holding, marker)  # one round trip, not two
        if state != taken.token or length != count:
            pipe.multi()
            return 2 if state == DONE + taken.token else 0
        pipe.multi()
        pipe.delete(holding)
        pipe.set(marker, DONE + taken.token, px=DONE_MS)
        write(pipe)
        return 1

    return _watched(client, attempt, holding, marker)


WATCH_TRIES = 5
"""Tries of a watched transaction before it is taken for a dropped connection (see
`_watched`); a settle that loses a race to a reaper or a cut needs two."""


def _watched(client: redis.Redis, attempt: Callable[[Transaction], int], *keys: str) -> int:
    """redis-py's ``client.transaction``, but bounded: redis-py turns a connection dropped
    while keys are watched into a WatchError and tries again at once, for ever, so a
    transaction Redis cuts off every time (a value over its ``proto-max-bulk-len``) would be
    a silent hot loop. After `WATCH_TRIES` it is a ConnectionError, which `Outage` judges."""
    with client.pipeline(transaction=True) as pipe:
        for _ in range(WATCH_TRIES):
            try:
                pipe.watch(*keys)  # type: ignore[no-untyped-call]
                value = attempt(pipe)
                pipe.execute()
                return value
            except redis.WatchError:
                continue
    raise redis.ConnectionError(f"the transaction was cut off {WATCH_TRIES} times in a row")


def _look(
    client: redis.Redis, pipe: Transaction, fence: Script, holding: str, marker: str
) -> list[bytes | int | None]:
    """holder.lua on the watched connection, by EVALSHA alone: redis-py's Script would have
    the transaction ask SCRIPT EXISTS before its EXEC, one more round trip per settle."""
    try:
        return cast(list[bytes | int | None], pipe.evalsha(fence.sha, 2, holding, marker))
    except redis.exceptions.NoScriptError:  # Redis restarted (or flushed its scripts)
        client.script_load(fence.script)
        return cast(list[bytes | int | None], pipe.evalsha(fence.sha, 2, holding, marker))


def now_ms(pipe: Transaction) -> int:
    """Redis TIME in milliseconds, read through ``pipe`` before its MULTI."""
    seconds, micros = pipe.time()
    return int(seconds) * 1000 + int(micros) // 1000
