"""The store writer: a child process that applies a busy sink's events to the store.

Applying an event costs the store's Python (SQLAlchemy, the natural-key lookups) about half a
millisecond to a millisecond; a Prefect task run or a Snakemake job makes three or four. In the
engine's own process that time is taken from the engine — its threads share one interpreter lock,
and Prefect's own work already keeps that process busy — so once a sink has more than
WRITER_AFTER events to apply, spool.Sink starts this process and hands it the events as the very
journal lines it wrote (nothing is serialised twice). The journal keeps them until the writer says
they are in the store; if it dies or fails, the sink falls back to writing itself, from the
journal, which still holds everything not acknowledged (applying is idempotent).

Protocol, on stdin: a header line `{"instance": ref, "seq": n, "lines": k}` followed by k journal
lines (event batches), or `{"sync": n, "openlineage": bool}`. On stdout: `{"seq": n}` once the
batches up to n are committed — batches that arrived together go in one transaction — or
`{"seq": n, "error": "..."}` for the first that fails, after which it exits; `{"sync": n}` once
everything before it is committed (and, with "openlineage", its OpenLineage events sent). The
OpenLineage events of what it applies are built and sent here, not in the engine's process.

    python -m flowprov.store_writer      # started by flowprov, not by hand
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time

logger = logging.getLogger("flowprov")

WRITER_AFTER = 200  # events a sink applies itself before it starts a writer


def enabled() -> bool:
    """Off unless FLOWPROV_STORE_WRITER=on: on a 2-core machine that the engine and Prefect's
    server already keep busy, it has not been measured to save wall time (see the benchmarks'
    README); on one with idle cores it takes the store's work out of the engine's process."""
    return os.environ.get("FLOWPROV_STORE_WRITER", "").strip().lower() in ("1", "on", "true", "yes")


class WriterGone(Exception):
    """The writer process ended or failed: what it had not acknowledged is still in the journal."""


class Writer:
    """The sink's side: one writer process, used by one sink of one process (under its lock)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowprov.store_writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self.pid = os.getpid()  # a forked child must not write to its parent's writer
        self.sent = 0  # the last batch sequence number handed over
        self.done = 0  # the last one committed
        self.syncs = 0
        self._out = self.proc.stdout.fileno()
        try:  # room for a few seconds of events: a busy writer must not stall the engine
            import fcntl

            fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):  # not Linux, or over pipe-max-size
            pass
        os.set_blocking(self._out, False)
        self._partial = b""

    @property
    def idle(self) -> bool:
        return self.done == self.sent

    def ship(self, instance: str | None, lines: list[bytes]) -> None:
        """Hand over journal lines (each ends with a newline); raises WriterGone."""
        self.sent += 1
        head = json.dumps({"instance": instance, "seq": self.sent, "lines": len(lines)})
        self._write(head.encode() + b"\n" + b"".join(lines))
        self.poll()

    def _write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (OSError, ValueError) as e:  # a broken pipe: it died
            raise WriterGone(f"the store writer process ended ({e})") from e

    def poll(self, timeout: float | None = 0.0, sync: int | None = None) -> bool:
        """Read its answers (waiting up to `timeout` for one); True once `sync` is answered.
        Raises WriterGone on a failure it reports or its end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                data = os.read(self._out, 1 << 16)
            except BlockingIOError:
                data = None
            if data == b"":
                raise WriterGone(f"the store writer process ended (exit {self.proc.poll()})")
            if data:
                *lines, self._partial = (self._partial + data).split(b"\n")
                for line in lines:
                    msg = json.loads(line)
                    if "error" in msg:
                        raise WriterGone(msg["error"])
                    if "seq" in msg:
                        self.done = msg["seq"]
                    if sync is not None and msg.get("sync") == sync:
                        return True
                continue
            if sync is None and (self.idle or timeout == 0.0):
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            select.select([self._out], [], [], left)

    def wait(self, timeout: float | None = None, openlineage: bool = False) -> bool:
        """Until everything handed over is committed (and its OpenLineage events sent, if asked);
        False when `timeout` ran out. Raises WriterGone."""
        self.syncs += 1
        self._write(json.dumps({"sync": self.syncs, "openlineage": openlineage}).encode() + b"\n")
        return self.poll(timeout, sync=self.syncs)

    def close(self, timeout: float = 60.0) -> None:
        """End it: it finishes what it was given (and sends its OpenLineage events) first."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("flowprov: the store writer is still busy at exit: left to finish")


# -- the child -----------------------------------------------------------------------------------
def main() -> int:
    from .events import EventBatch
    from .instance import current
    from .openlineage import emitter

    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("flowprov: %(message)s"))
    logger.addHandler(h)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    emitter.USE_SENDER = False  # this process is the background: OpenLineage goes out from here

    def answer(msg: dict) -> None:
        os.write(1, json.dumps(msg).encode() + b"\n")

    buf = b""
    want = 0  # journal lines still to come for the current header
    batch: dict | None = None
    pending: list[tuple[dict, list]] = []  # (header, events) read but not yet applied

    def apply_pending() -> bool:
        """Apply what was read, each instance's consecutive batches in one transaction."""
        while pending:
            head, events = pending.pop(0)
            while pending and pending[0][0]["instance"] == head["instance"]:
                head, more = pending.pop(0)
                events += more
            try:
                current(head["instance"]).store.apply(events)
            except Exception as e:  # noqa: BLE001 - the sink falls back to its journal
                answer({"seq": head["seq"], "error": f"{type(e).__name__}: {e}"[:2000]})
                return False
            answer({"seq": head["seq"]})
        return True

    while True:
        data = os.read(0, 1 << 20)  # what has arrived: several batches applied as one
        if not data:
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if want:
                batch["events"] += EventBatch.model_validate_json(line).events
                want -= 1
                if not want:
                    pending.append((batch["head"], batch["events"]))
                continue
            msg = json.loads(line)
            if "sync" in msg:
                if not apply_pending():
                    return 1
                if msg.get("openlineage"):
                    emitter.flush(120)
                answer({"sync": msg["sync"]})
            else:
                want = msg["lines"]
                batch = {"head": msg, "events": []}
                if not want:
                    pending.append((msg, []))
        if not want and not apply_pending():  # what arrived together, applied together
            return 1
    return 0 if apply_pending() else 1


if __name__ == "__main__":
    sys.exit(main())
