"""Never lose an event: a sink that writes to the store, or to a spool file when it cannot.

Engine adapters hand their event batches to a `Sink`. If the database cannot be reached (or
anything else goes wrong while writing), the batch — and every batch after it, so order is kept —
is appended to a JSON-lines spool file, flushed and fsync'ed, and one warning is issued.
`flowprov replay SPOOL` applies the batches later; applying is idempotent, so a replay that runs
twice, or a batch that had in fact reached the store, changes nothing.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from .events import EventBatch

logger = logging.getLogger("flowprov")


def append(path: Path, events: Sequence) -> None:
    """Append one batch as a line, durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = EventBatch(events=list(events)).model_dump_json() + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read(path: Path) -> list[EventBatch]:
    from pydantic import ValidationError as PydanticError

    from .errors import ValidationError

    batches = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                batches.append(EventBatch.model_validate_json(line))
            except PydanticError as e:
                # a line cut short by a crash while writing is the only expected damage
                raise ValidationError(
                    f"{path}, line {n}: not a flowprov event batch ({e.errors()[0]['msg']})"
                ) from e
    return batches


def replay(path: str | os.PathLike) -> tuple[int, int]:
    """Apply every batch of a spool file, in order. Returns (batches, events)."""
    from .errors import FileMissingError
    from .instance import current

    p = Path(path)
    if not p.is_file():
        raise FileMissingError(f"no spool file at {p}")
    batches = read(p)
    store = current().store
    for b in batches:
        store.apply(b.events)
    return len(batches), sum(len(b.events) for b in batches)


FLUSH_SECONDS = 0.5
_live_sinks: weakref.WeakSet = weakref.WeakSet()


def flush_all() -> None:
    """Write every sink's buffered events now (before reading a run that may still be buffered,
    and at interpreter exit)."""
    for sink in list(_live_sinks):
        sink.flush()


atexit.register(flush_all)


class Sink:
    """Where an adapter sends its events. Thread-safe; `send` never raises.

    `send(events, buffered=True)` collects events and writes them in one transaction about every
    FLUSH_SECONDS (or when 1,000 are waiting): an engine reporting many short tasks otherwise pays
    a transaction per event batch. `flush()` writes what waits.
    """

    def __init__(self, spool_path: str | os.PathLike, source: str, instance: str | None = None):
        self.spool_path = Path(spool_path)
        self.source = source
        self.instance = instance  # a name or yaml path; None: the current instance
        self.spooling = False
        self.spooled = 0
        self._lock = threading.RLock()
        self._buffer: list = []
        self._last_flush = time.monotonic()
        _live_sinks.add(self)

    def send(self, events: Sequence, buffered: bool = False) -> None:
        if not events and not self._buffer:
            return
        with self._lock:
            self._buffer.extend(events)
            due = len(self._buffer) >= 1000 or time.monotonic() - self._last_flush >= FLUSH_SECONDS
            if not buffered or due:
                self.flush()

    def flush(self) -> None:
        with self._lock:
            events, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
            if events:
                self._write(events)

    def _write(self, events: Sequence) -> None:
        if not self.spooling:
            try:
                from .instance import current

                current(self.instance).store.apply(events)
                return
            except Exception as e:  # noqa: BLE001 - whatever failed, the user's work goes on
                self.spooling = True
                logger.warning(
                    "flowprov (%s): cannot write to the provenance store (%s); events are kept in %s"
                    " — apply them later with `flowprov replay %s`",
                    self.source,
                    e,
                    self.spool_path,
                    self.spool_path,
                )
        try:
            append(self.spool_path, events)
            self.spooled += len(events)
        except Exception as e:  # noqa: BLE001 - last resort: say so, do not break the workflow
            logger.error(
                "flowprov (%s): could not spool %d events to %s: %s",
                self.source,
                len(events),
                self.spool_path,
                e,
            )
