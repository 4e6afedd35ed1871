"""The audit file's hash chain: each line names the hash of the line before it.

A chained line is the record with two fields added, in fixed places so that checking a line
needs no JSON parsing:

    {"prev":"<64 hex>", ...the record's own fields... ,"hash":"<64 hex>"}

`hash` is the SHA-256 of the line without its `,"hash":"..."` tail (that is, of
`{"prev":"...",...}`), and `prev` is the `hash` of the line before (64 zeros on the first line
of a file). Editing a line breaks its own hash; removing, inserting or reordering lines breaks
the `prev` of the line after; a line cut short (a crash mid-write, or a truncation) is not a
whole chained line. What the chain alone cannot show is the loss of the *last* lines of a file:
compare the head (`hash` of the last line) with one recorded elsewhere (`--head`; the router logs
the head when it stops, and every record carries the chain position in `prev`).

Anyone who can rewrite the whole file can also recompute the whole chain: the chain makes
tampering evident against an anchor kept elsewhere (a SIEM that received the records as they
were written, the logged head), not impossible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

GENESIS = b"0" * 64
_PREV = b'{"prev":"'
_HASH = b',"hash":"'
TAIL = len(_HASH) + 64 + 2  # ,"hash":"<64 hex>"}


class Chain:
    """Links records onto a file's chain; `head` is the hash of the last line linked."""

    def __init__(self, head: bytes = GENESIS) -> None:
        self.head = head

    def link(self, record: bytes) -> bytes:
        """One serialized record (a JSON object, no newline) as its chained line."""
        body = _PREV + self.head + b'",' + record[1:] if record != b"{}" else _PREV + self.head + b'"}'
        digest = hashlib.sha256(body).hexdigest().encode()
        self.head = digest
        return body[:-1] + _HASH + digest + b'"}'

    @classmethod
    def continuing(cls, path: Path) -> Chain:
        """The chain of an existing file, continued from its last whole line (a new one if none)."""
        last = last_line(path)
        if last is None:
            return cls()
        digest = _own_hash(last)
        return cls(digest if digest is not None else hashlib.sha256(last).hexdigest().encode())


def last_line(path: Path) -> bytes | None:
    """The last complete line of a file, without its newline; None if there is none."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            size = file.tell()
            block = min(size, 64 * 1024)
            while True:
                file.seek(size - block)
                data = file.read(block)
                lines = data.rstrip(b"\n").rsplit(b"\n", 1)
                if len(lines) == 2 or block == size:
                    last = lines[-1]
                    return last or None
                block = min(size, block * 4)
    except FileNotFoundError:
        return None


def _own_hash(line: bytes) -> bytes | None:
    if len(line) < len(_PREV) + 64 + TAIL or line[-TAIL : -TAIL + len(_HASH)] != _HASH:
        return None
    return line[-66:-2]


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: `records` whole lines checked, `head` the last good hash, and the
    first break (`line`, 1-based, and why) or None if the chain holds."""

    records: int
    head: str
    line: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.line is None


def verify(lines: Iterable[bytes], head: str | None = None) -> Verdict:
    """Check a chained file's lines (with or without newlines); stops at the first break.

    Written for speed (a million records in a few seconds): no JSON parsing, one SHA-256 per
    line over a slice, fixed offsets for `prev` and `hash`."""
    prev = GENESIS
    sha256 = hashlib.sha256
    least = len(_PREV) + 64 + TAIL
    n = 0
    for n, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw[-1:] == b"\n" else raw
        if len(line) < least or line[-TAIL : 9 - TAIL] != _HASH or line[:9] != _PREV or line[73:75] != b'",':
            if raw[-1:] != b"\n":
                why = "not a whole chained record: the file was cut short (truncated mid-record)"
            else:
                why = "not a chained audit record (edited, or not from toolmesh's file sink)"
            return Verdict(n - 1, prev.decode(), n, why)
        own = line[-66:-2]
        digest = sha256(line[:-TAIL])
        digest.update(b"}")
        if digest.hexdigest().encode() != own:
            return Verdict(
                n - 1, prev.decode(), n, "the record was edited: its content does not match its hash"
            )
        if line[9:73] != prev:
            why = (
                "the chain does not start here: records before it were removed"
                if n == 1
                else "does not follow the line before it: a record was removed, inserted or reordered here"
            )
            return Verdict(n - 1, prev.decode(), n, why)
        prev = own
    if head is not None and prev.decode() != head.lower():
        return Verdict(
            n,
            prev.decode(),
            n + 1,
            f"the chain ends at line {n}, not at head {head}: records after it are missing",
        )
    return Verdict(n, prev.decode())


def records(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The records of chained lines without their chain fields (for export)."""
    for raw in lines:
        line = raw.rstrip(b"\n")
        if line:
            yield b"{" + line[75:-TAIL] + b"}"
