"""The receiver's journal: every accepted weblog body is on disk before Nextflow gets its 2xx.

A journal is a folder (default `<cache_dir>/weblog/<instance>-<uid>/`, see `default_dir`):

    receiver.lock           flock of the live receiver: one receiver per journal
    applier.lock            flock of the applier: never two appliers on one journal
    00000000000000000000.jsonl, ...
                            segments: the POST bodies, one per line, in the order they were
                            acknowledged. A segment is named by the sequence number of its first
                            line (as Kafka names its log segments), so every journaled event has a
                            number: line i of segment B is event B + i. A new segment is begun
                            at every receiver start and every SEGMENT_BYTES.
    applied.json            where applying stands ({"segment", "offset", "seq"} = the next line
                            to apply) and the applier's counters; replaced atomically after each
                            committed batch. A kill between a commit and this file re-applies
                            that batch, which the store's natural keys make harmless.
    rejected.jsonl          events that could not be applied for a reason other than the store
                            being away: {"at", "reason", "seq", "body"} — `body` is the POST body.

Appends are one write() each and not fsync'ed by default: the page cache survives a SIGKILL of
the receiver (what the journal is for); `listen --fsync` also survives a power cut, at a cost in
latency. A line cut short (the machine went down mid-write) was never acknowledged: the next
receiver cuts it off before it writes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from flowprov.errors import FlowprovError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SEGMENT_BYTES = 64 * 1024 * 1024
SUFFIX = ".jsonl"
APPLIED = "applied.json"
REJECTED = "rejected.jsonl"
READ_BYTES = 4 * 1024 * 1024  # what one read of a segment takes at most


class JournalError(FlowprovError):
    """The journal folder cannot be used (taken by another receiver, unwritable, damaged)."""


def default_dir(inst) -> Path:
    """Per instance under flowprov's cache folder, so a restarted receiver finds its journal.
    Named from the instance's config only (no database access: the store may be away)."""
    from flowprov._settings import settings

    return settings.cache_dir / "weblog" / f"{inst.name}-{inst.config.uid}"


def one_line(body: bytes) -> bytes:
    """A JSON body on one line. In valid JSON a raw CR or LF can only be whitespace between
    tokens (inside strings they must be escaped), so a space in its place changes nothing."""
    if b"\n" in body or b"\r" in body:
        body = body.replace(b"\r", b" ").replace(b"\n", b" ")
    return body


@dataclass(frozen=True)
class Position:
    segment: int  # base sequence number of the segment
    offset: int  # bytes into it
    seq: int  # sequence number of the line that starts at offset


@dataclass(frozen=True)
class Line:
    seq: int
    body: bytes
    end: Position  # where the line after it starts
    torn: bool = False  # cut short: the receiver died mid-write (never acknowledged)


class Lock:
    """An exclusive flock on a file of the journal, held while the holder lives (the kernel drops
    it however the process dies). The holder's pid is written in it for messages."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


class Journal:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def create(self) -> Journal:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise JournalError(
                f"cannot create the journal folder {self.path}: {e.strerror}"
            ) from None
        if not os.access(self.path, os.W_OK):
            raise JournalError(f"the journal folder {self.path} is not writable")
        return self

    # -- segments ------------------------------------------------------------------------------
    def segments(self) -> list[int]:
        out = []
        for p in self.path.glob("*" + SUFFIX):
            stem = p.name[: -len(SUFFIX)]
            if stem.isdigit():
                out.append(int(stem))
        return sorted(out)

    def segment_path(self, base: int) -> Path:
        return self.path / f"{base:020d}{SUFFIX}"

    def lock(self, who: str, wait: float = 0.0) -> Lock:
        lock = Lock(self.path / f"{who}.lock")
        if not lock.acquire(wait):
            raise JournalError(
                f"another {who} (pid {lock.holder()}) is using the journal {self.path}: stop it "
                "first, or give this one its own --journal"
            )
        return lock

    # -- where applying stands -----------------------------------------------------------------
    def load_applied(self) -> dict:
        try:
            state = json.loads((self.path / APPLIED).read_text())
        except FileNotFoundError:
            state = {}
        except (OSError, ValueError) as e:
            raise JournalError(
                f"{self.path / APPLIED} cannot be read ({e}): nothing was applied"
            ) from None
        return state

    def save_applied(self, state: dict) -> None:
        tmp = self.path / (APPLIED + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path / APPLIED)

    def applied_position(self, state: dict | None = None) -> Position:
        state = self.load_applied() if state is None else state
        if "segment" in state:
            return Position(int(state["segment"]), int(state["offset"]), int(state["seq"]))
        segs = self.segments()
        first = segs[0] if segs else 0
        return Position(first, 0, first)

    def end_seq(self) -> int:
        """The sequence number the next appended line gets (complete lines only)."""
        segs = self.segments()
        if not segs:
            return self.applied_position().seq
        last = segs[-1]
        with open(self.segment_path(last), "rb") as f:
            return last + f.read().count(b"\n")

    def reject(self, line: Line, reason: str) -> None:
        rec = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reason": reason,
            "seq": line.seq,
            "body": line.body.decode("utf-8", "replace"),
        }
        with open(self.path / REJECTED, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")

    def drop_before(self, base: int) -> None:
        """Delete the segments before `base` (all applied)."""
        for s in self.segments():
            if s < base:
                self.segment_path(s).unlink(missing_ok=True)


class Writer:
    """Appends bodies to the journal (the receiver's side). Opening begins a new segment, after
    cutting off a line the previous receiver left cut short."""

    def __init__(
        self, journal: Journal, *, fsync: bool = False, segment_bytes: int = SEGMENT_BYTES
    ):
        self.journal = journal
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.dropped_tail = self._cut_torn_tail()
        self.next_seq = journal.end_seq()
        self.fd: int | None = None
        self.size = 0
        self._open(self.next_seq)

    def _cut_torn_tail(self) -> int:
        segs = self.journal.segments()
        if not segs:
            return 0
        path = self.journal.segment_path(segs[-1])
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            os.truncate(path, keep)
        return len(data) - keep

    def _open(self, base: int) -> None:
        if self.fd is not None:
            os.close(self.fd)
        path = self.journal.segment_path(base)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self.fd).st_size

    def append(self, body: bytes) -> int:
        """Journal one body; returns its sequence number. All or nothing: a failed write (disk
        full) is cut off again, so the journal never holds half a line."""
        data = one_line(body) + b"\n"
        if self.size and self.size + len(data) > self.segment_bytes:
            self._open(self.next_seq)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            if self.fsync:
                os.fdatasync(self.fd)
        except OSError:
            os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Reader:
    """Reads complete lines from a position on (the applier's side), across segments."""

    def __init__(self, journal: Journal, pos: Position):
        self.journal = journal
        self.pos = pos

    def read(self, max_lines: int) -> list[Line]:
        out: list[Line] = []
        pos = self.pos
        while len(out) < max_lines:
            segs = self.journal.segments()
            later = [s for s in segs if s > pos.segment]
            path = self.journal.segment_path(pos.segment)
            read_at = pos.offset
            try:
                with open(path, "rb") as f:
                    f.seek(pos.offset)
                    data = f.read(READ_BYTES)
            except FileNotFoundError:
                data = b""
                if pos.segment not in segs and later:  # applied and deleted, or never written
                    pos = Position(later[0], 0, max(pos.seq, later[0]))
                    continue
            start = 0
            while len(out) < max_lines:
                nl = data.find(b"\n", start)
                if nl < 0:
                    break
                end = Position(pos.segment, read_at + nl + 1, pos.seq + 1)
                out.append(Line(pos.seq, data[start:nl], end))
                start = nl + 1
                pos = end
            if len(out) >= max_lines:
                break
            rest = data[start:]
            if len(data) == READ_BYTES and rest and start:
                continue  # the read ended inside a line: read again from its start
            if not later:
                break  # the live segment: what is not complete yet is still being written
            # a closed segment (the receiver moved on): a tail without newline was cut short
            if rest:
                out.append(Line(pos.seq, rest, Position(later[0], 0, later[0]), torn=True))
            pos = Position(later[0], 0, later[0])
            if rest:
                break
        self.pos = pos
        return out
