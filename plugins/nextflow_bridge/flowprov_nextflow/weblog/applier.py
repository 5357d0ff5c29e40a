"""Applies the journal to the store, in batches, behind the receiver — in a child process of its
own (`python -m flowprov_nextflow.weblog.applier`), so that translating and writing never hold
the GIL the receiver's event loop needs to acknowledge within milliseconds.

The child dies with its parent (PR_SET_PDEATHSIG on Linux; and it stops when its stdin, a pipe
from the parent, closes), and holds the journal's applier.lock: never two appliers on one journal.

A batch is what the journal holds past the applied position (up to BATCH lines): translated by
one Translator (`translate(batch)`) and applied in one transaction (`inst.store.apply`), then the
position is saved. When that fails:
- the store is away (unreachable, locked, refusing writes): `Translator.reset()`, wait (backoff
  up to MAX_BACKOFF), try the same batch again — the receiver keeps journaling meanwhile;
- anything else: the batch is split in halves, applied in order, down to the one event that
  fails; that event goes to rejected.jsonl with its reason and the journal goes on.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from .envelope import EnvelopeError, parse_body
from .journal import Journal, Line, Position, Reader

logger = logging.getLogger("flowprov.weblog")

BATCH = 2000
POLL = 0.02  # seconds between looks at an idle journal
MAX_BACKOFF = 10.0


class StoreAway(Exception):
    """The store cannot take the batch now; it will be tried again as it is."""


def store_away(e: BaseException) -> bool:
    """Whether a failure is the store's condition (retry the batch later) rather than one event's
    (isolate it). A read-only role or an outdated schema is the store's too: an administrator
    fixes it, and rejecting every event meanwhile would be wrong."""
    from flowprov.errors import DatabaseUnavailable, InstanceError, PermissionDenied
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

    return isinstance(
        e,
        DatabaseUnavailable
        | InstanceError
        | PermissionDenied
        | OperationalError
        | InterfaceError
        | DisconnectionError
        | ConnectionError,
    )


class Applier:
    def __init__(self, journal: Journal, inst, *, translator=None, batch: int = BATCH):
        from .translate import Translator

        self.journal = journal
        self.inst = inst
        self.translator = translator if translator is not None else Translator()  # current instance
        self.batch = batch
        state = journal.load_applied()
        self.pos = journal.applied_position(state)
        self.reader = Reader(journal, self.pos)
        self.applied = int(state.get("applied", 0))
        self.rejected = int(state.get("rejected", 0))
        self.skipped: dict[str, int] = dict(state.get("skipped", {}))
        self.store_error: str | None = None
        self.away_since: float | None = None
        self._held: list[
            tuple[Line, object]
        ] = []  # the batch in hand, kept while the store is away

    # -- one batch -----------------------------------------------------------------------------
    def step(self) -> int:
        """Apply what the journal holds past the position (one batch); the number of lines done.
        StoreAway leaves the batch in hand for the next step."""
        if not self._held:
            self._held = [(line, self._parse(line)) for line in self.reader.read(self.batch)]
        if not self._held:
            return 0
        n = len(self._held)
        self._apply(list(self._held))
        return n

    def _parse(self, line: Line):
        if line.torn:
            self._reject(line, "cut short in the journal (the machine stopped mid-write)")
            return None
        try:
            ev = parse_body(line.body)
        except EnvelopeError as e:
            self._reject(line, f"not a weblog event: {e}")
            return None
        if not ev.known:
            self.skipped[ev.event] = self.skipped.get(ev.event, 0) + 1
            return None
        return ev

    def _apply(self, items: list) -> None:
        envelopes = [ev for _, ev in items if ev is not None]
        try:
            if envelopes:
                events = self.translator.translate(envelopes)
                if events:
                    self.inst.store.apply(events)
        except Exception as e:  # noqa: BLE001 - isolated below, never lost
            self.translator.reset()
            if store_away(e):
                raise StoreAway(f"{type(e).__name__}: {e}") from e
            if len(items) == 1:
                self._reject(items[0][0], f"{type(e).__name__}: {e}")
                self._done(items, applied=0)
                return
            mid = len(items) // 2
            logger.debug("a batch of %d failed (%s): isolating the event", len(items), e)
            self._apply(items[:mid])
            self._apply(items[mid:])
            return
        self._done(items, applied=len(envelopes))

    def _done(self, items: list, applied: int) -> None:
        """`items`, the head of the batch in hand, are applied or rejected: move past them."""
        del self._held[: len(items)]
        self.applied += applied
        self.pos = items[-1][0].end
        self.save()

    def _reject(self, line: Line, reason: str) -> None:
        self.rejected += 1
        self.journal.reject(line, reason)
        logger.error(
            "weblog event #%d rejected (kept in %s): %s",
            line.seq,
            self.journal.path / "rejected.jsonl",
            reason[:500],
        )

    def save(self) -> None:
        p: Position = self.pos
        self.journal.save_applied(
            {
                "segment": p.segment,
                "offset": p.offset,
                "seq": p.seq,
                "applied": self.applied,
                "rejected": self.rejected,
                "skipped": self.skipped,
                "translator_ignored": dict(getattr(self.translator, "ignored", {}) or {}),
                "store": "ok" if self.away_since is None else "unreachable",
                "store_error": self.store_error,
                "away_since": self.away_since,
                "pid": os.getpid(),
            }
        )
        if p.segment > min(self.journal.segments(), default=p.segment):
            self.journal.drop_before(p.segment)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stopping: threading.Event) -> None:
        """Apply until `stopping` is set and the journal is drained (or the store is away)."""
        delay = 0.0
        catching_up = False
        while True:
            try:
                n = self.step()
            except StoreAway as e:
                if self.away_since is None:
                    self.away_since = time.time()
                    logger.warning(
                        "the store is unreachable (%s): events keep being journaled in %s and "
                        "will be applied when it returns; retrying with backoff",
                        e,
                        self.journal.path,
                    )
                self.store_error = str(e)[:500]
                self.save()
                delay = min(max(delay * 2, 0.5), MAX_BACKOFF)
                if stopping.wait(delay):
                    logger.warning("stopping while the store is away: the journal keeps the rest")
                    return
                continue
            if self.away_since is not None:
                logger.warning(
                    "the store is reachable again after %.0f s: catching up on the journal",
                    time.time() - self.away_since,
                )
                self.away_since, self.store_error, delay = None, None, 0.0
                catching_up = True
                self.save()
            if n == 0:
                if catching_up:
                    logger.warning("caught up: every journaled event is applied")
                    catching_up = False
                if stopping.is_set():
                    return
                stopping.wait(POLL)


# -- the child process ---------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="flowprov weblog applier")
    ap.add_argument("--journal", required=True)
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--batch", type=int, default=BATCH)
    a = ap.parse_args(argv)
    _die_with_parent(a.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the receiver, which stops us
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s flowprov applier %(levelname)s %(message)s"
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def watch_parent():  # stdin is a pipe from the receiver: EOF = finish and stop
        try:
            while sys.stdin.buffer.read(1):
                pass
        finally:
            stopping.set()

    threading.Thread(target=watch_parent, daemon=True).start()

    from flowprov import instance
    from flowprov.errors import FlowprovError

    try:
        journal = Journal(a.journal)
        lock = journal.lock("applier", wait=10)
        inst = instance.current()
        applier = Applier(journal, inst, batch=a.batch)
    except FlowprovError as e:
        logger.error("%s", e)
        return 2
    try:
        applier.run(stopping)
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
