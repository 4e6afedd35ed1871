"""A replica's usage calls on disk until their batch is acknowledged: nothing answered is lost to a kill.

With `usage_spool_dir` set, `SharedUsage` writes one short line per counted call to this
replica's spool (one `os.write` on an `O_APPEND` descriptor, before the call's reply is written:
the page cache keeps it when the process is SIGKILLed). The lines are kept in segments, one per
batch: when the publisher drains its outbox into batch `n`, the segment of batch `n` is closed
(it holds exactly the calls of that batch) and segment `n + 1` takes the next calls; once batch
`n` is acknowledged by JetStream its segment is deleted. So the spool holds the calls of the
batch in flight and those counted since, nothing older.

While NATS is down no batch is drained, and the current segment would grow by a line per call
for as long as the outage lasts. Once it passes `COMPACT_AT` bytes it is rewritten as the minute
totals of its calls (the outbox's rows, which are exactly those calls: both start at the same
drain), one line, under a temporary name renamed over the segment, so a kill at any point leaves
either the old segment or the new one whole. New calls are appended after it, and the next
compaction waits until the segment is four times the size of the rewritten one: the spool grows
with the number of distinct (minute, agent, tool) totals, as the outbox in memory does, not with
the number of calls.

Files in the directory, for replica `r`:

- `usage.r.lock`: held with `flock` for the replica's life (the kernel lets go of it when the
  process dies, however it dies). It is created under a temporary name, locked, and then
  renamed, so no one can find it unlocked while its owner is alive.
- `usage.r.<n>.calls`: the segment of batch `n`, one JSON array per line:
  `[time, agent, server, tool, ok, seconds, request_bytes, response_bytes, cost, groups, namespace]`;
  after a compaction, its first line is `{"rows": [row, ...]}` (rows as `UsageLedger.rows()`).
- `.usage.r.<n>.compact`: a compaction being written (not read; deleted with the spool).

A replica that can take the `flock` of another replica's lock file knows that replica is dead
(`adoptable`): it reads that replica's segments, publishes every batch the stream does not
have yet (after the last one the dead replica stored, read from the stream; one at a time, in
order, under the dead replica's subject and message id, so a batch that was stored but whose
acknowledgement never arrived is not counted twice), and deletes the files. Every replica
sharing the directory does this on start and every `ADOPT_INTERVAL` seconds, so a killed
replica's calls are published by the next replica to start there, or by another running one.

All file work other than the per-call line runs in a worker thread (`anyio.to_thread`): a
segment left by a replica that lost NATS for an hour can be large, and reading it must not hold
the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from router.observe.usage import Row, UsageLedger

log = logging.getLogger("toolmesh.usage")

ADOPT_INTERVAL = 5.0  # seconds between two looks for the spools of dead replicas
COMPACT_AT = 16 * 1024 * 1024  # bytes of the current segment that make it rewritten as minute totals


@dataclass(frozen=True, slots=True)
class Orphan:
    """A dead replica's spool, locked by the replica adopting it (`fd` holds the flock)."""

    replica: str
    lock: Path
    fd: int
    segments: tuple[tuple[int, Path], ...]  # (batch number, file), in order


class UsageSpool:
    """This replica's spool: its lock and the segment that takes the calls counted now."""

    def __init__(self, directory: Path, replica: str, *, compact_at: int = COMPACT_AT) -> None:
        self.directory = directory
        self.replica = replica
        self.current = 1  # the batch number of the segment that takes new lines
        self.size = 0  # bytes in the current segment
        self.compact_at = compact_at  # `size` at which the owner should call `compact`
        self._compact_floor = compact_at
        self._lock_fd = -1
        self._fd = -1
        self._failed = False  # a write failed (disk full): told once

    def open(self) -> None:
        """Create the directory if needed, take this replica's lock, open segment 1."""
        final = self.directory / f"usage.{self.replica}.lock"
        temporary = self.directory / f".usage.{self.replica}.lock.new"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temporary, final)
            self._lock_fd = fd
            self._fd = self._open_segment(self.current)
        except OSError as exc:
            raise RuntimeError(
                f"usage_spool_dir {self.directory}: cannot keep the usage spool there ({exc.strerror}); "
                "give a directory this process may create and write"
            ) from exc

    def write(self, line: bytes) -> None:
        """One call's line (ends with a newline), in one `os.write`."""
        try:
            self.size += os.write(self._fd, line)
        except OSError as exc:  # disk full, say: the call is still counted and published
            self._tell_failed(exc)

    def compact(self, rows: list[Row]) -> None:
        """Rewrite the current segment as `rows`, the minute totals of exactly its calls (see the
        module docstring). Synchronous, so no call is counted between the rows and the rename:
        a hundred bytes or so per distinct (minute, agent, tool), once per `compact_at` bytes."""
        data = orjson.dumps({"rows": rows}, option=orjson.OPT_APPEND_NEWLINE)
        temporary = self.directory / f".usage.{self.replica}.{self.current}.compact"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(temporary, self._segment(self.current))
        except OSError as exc:  # the segment stays as it was; try again once it has doubled
            with contextlib.suppress(OSError):
                temporary.unlink()
            self.compact_at = 2 * self.size
            self._tell_failed(exc)
            return
        old, self._fd = self._fd, self._open_segment(self.current)
        os.close(old)
        self.size = len(data)
        self.compact_at = max(self._compact_floor, 4 * self.size)

    def _tell_failed(self, exc: OSError) -> None:
        if not self._failed:
            self._failed = True
            log.error("usage spool write failed: a kill now would lose calls", extra={"reason": repr(exc)})

    def rotate(self, number: int) -> None:
        """Batch `number` was drained from the outbox: its segment is complete; new lines go to
        the segment of `number + 1`."""
        if number != self.current:  # cannot happen: batches are numbered as the segments
            raise RuntimeError(f"usage spool at segment {self.current}, batch {number} drained")
        fd, self.current = self._fd, number + 1
        self._fd = self._open_segment(self.current)
        os.close(fd)
        self.size, self.compact_at = 0, self._compact_floor

    def acknowledged(self, number: int) -> None:
        """Batch `number` is stored in the stream: its calls need not be kept."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._segment(number))

    def close(self) -> None:
        """Stopping: give up the files. An empty current segment and, when no segment is left,
        the lock file go; anything not acknowledged stays for a replica that adopts it."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        current = self._segment(self.current)
        with contextlib.suppress(FileNotFoundError):
            if current.stat().st_size == 0:
                current.unlink()
        if not any(self.directory.glob(f"usage.{self.replica}.*.calls")):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"usage.{self.replica}.lock").unlink()
        os.close(self._lock_fd)
        self._lock_fd = -1

    def _segment(self, number: int) -> Path:
        return self.directory / f"usage.{self.replica}.{number}.calls"

    def _open_segment(self, number: int) -> int:
        return os.open(self._segment(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def adoptable(directory: Path, own: str) -> list[Orphan]:
    """The spools of dead replicas in `directory` (their locks free), each now locked by us.
    Blocking: call it in a worker thread."""
    found = []
    for lock in sorted(directory.glob("usage.*.lock")):
        replica = lock.name[len("usage.") : -len(".lock")]
        if replica == own or "." in replica:
            continue
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:  # adopted by another replica meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its owner is alive
            os.close(fd)
            continue
        if not lock.exists():  # another replica adopted it between our open and our lock
            os.close(fd)
            continue
        segments = []
        for path in directory.glob(f"usage.{replica}.*.calls"):
            number = path.name[len(f"usage.{replica}.") : -len(".calls")]
            if number.isdigit():
                segments.append((int(number), path))
        found.append(Orphan(replica, lock, fd, tuple(sorted(segments))))
    return found


def batch_of(path: Path, retention: float) -> list[Row]:
    """A segment's calls summed per minute, as the outbox drains them (a line cut short by a
    machine crash, or not a call's line, is skipped). Blocking: call it in a worker thread."""
    ledger = UsageLedger(retention)
    with path.open("rb") as lines:
        for line in lines:
            try:
                parsed = orjson.loads(line)
                if isinstance(parsed, dict):  # a compaction's minute totals
                    ledger.merge(parsed["rows"])
                    continue
                at, agent, server, tool, ok, seconds, request, response, cost, groups, namespace = parsed
                ledger.add(agent, server, tool, ok, seconds, request, response, cost, at, groups, namespace)
            except (orjson.JSONDecodeError, TypeError, ValueError, KeyError):
                log.warning("usage spool line skipped", extra={"file": str(path)})
    return ledger.drain()


def release(orphan: Orphan, *, done: bool) -> None:
    """Let go of an adopted spool: with `done` (every batch published or found stored) its files
    are deleted; otherwise they stay, unlocked, for the next try."""
    if done:
        for _, path in orphan.segments:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for path in orphan.lock.parent.glob(f".usage.{orphan.replica}.*.compact"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(FileNotFoundError):
            orphan.lock.unlink()
    os.close(orphan.fd)
