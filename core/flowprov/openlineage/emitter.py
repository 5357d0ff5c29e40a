"""Send OpenLineage events as runs happen, without ever holding up or breaking the engine.

After each write to the store has committed, the instance hands the flowprov events it applied
to `submit`. The few that concern a run's life (see `signals_of`) are queued, as small tuples, to
one background thread per process, which reads the runs from the store (facts.py), builds the
events (mapping.py) and gives them to the openlineage-python client, in the order the flowprov
events came: a workflow's START before its jobs', its COMPLETE after theirs. At exit the queue is
drained; from then on events are sent in the caller's thread.

When sending fails (an endpoint down, a full disk), flowprov warns once and keeps the signals —
which run, which event, when — in a spool file of this process under `<journal dir>/openlineage/`;
`flowprov replay` rebuilds the events from the store and sends them. The events themselves are
not kept: the store has everything they say, so a replayed event is the one that was due.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from . import configured

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("flowprov")

RETRY_SECONDS = 30.0
# a process with more runs than this to tell (a workflow, a flow) sends through a child process
# (sender.py), off the engine's interpreter lock; a script's one run is sent from its own thread
SENDER_AFTER = 20
USE_SENDER = True  # False in a process that is itself in the background (store_writer.py)
SPOOL_FORMAT = 1
_TERMINAL = {"completed", "failed", "aborted", "cached", "crashed", "cancelled", "unknown"}


# -- what in a batch of flowprov events makes an OpenLineage event ------------------------------
def signals_of(events, out: list, applied=None) -> list:
    """Append (event type, run, status, time) for each event that starts or ends a run; `run` is
    its uid, or (engine, reference) for a run the engine names by its own id. With the store's
    `applied` results, a run that already existed gets no second START (an ingest repeated), and
    the run is named by the uid the store knows it by."""
    for i, e in enumerate(events):
        kind = e.kind
        if kind == "run_started":
            uid, existed = e.uid, False
            if applied is not None:
                uid, existed = applied[i].uid or e.uid, applied[i].existed
            if e.status == "started" and not existed:
                out.append(("START", uid, None, e.at))
            elif e.status in _TERMINAL:  # reported after it ended (a trace row)
                if not existed:
                    out.append(("START", uid, None, e.at))
                out.append(("END", uid, e.status, e.finished_at or e.at))
        elif kind == "run_alive" and e.began:
            out.append(("START", _ref(e.run), None, e.at))
        elif kind == "run_finished":
            out.append(("END", _ref(e.run), e.status, e.at))
    return out


def _ref(r):
    return r.uid if r.uid else (r.engine, r.reference)


def encode_signal(sig) -> list:
    kind, ref, status, at = sig
    return [
        kind,
        ref if isinstance(ref, str) else list(ref),
        status,
        at.isoformat() if isinstance(at, datetime) else at,
    ]


def decode_signal(x) -> tuple:
    kind, ref, status, at = x
    return (
        kind,
        ref if isinstance(ref, str) else tuple(ref),
        status,
        datetime.fromisoformat(at) if at else None,
    )


# -- the namespace -----------------------------------------------------------------------------
_namespaces: dict[str, str] = {}


def namespace(inst) -> str:
    """OPENLINEAGE_NAMESPACE, else the instance setting `openlineage.namespace`, else its name."""
    if os.environ.get("OPENLINEAGE_NAMESPACE"):
        return os.environ["OPENLINEAGE_NAMESPACE"]
    key = str(inst.config_path)
    if key not in _namespaces:
        value = None
        try:
            from .. import instance_settings

            value = instance_settings.get(inst, "openlineage.namespace")
        except Exception as e:  # noqa: BLE001 - an old schema, a settings module not there yet
            logger.debug("flowprov: no openlineage.namespace setting (%s)", e)
        _namespaces[key] = value or inst.name
    return _namespaces[key]


# -- building events from the store --------------------------------------------------------------
def build(inst, signals: list, ns: str | None = None) -> list:
    """The RunEvents of these signals, from what the store holds now, in the signals' order. A
    run the store does not hold (deleted since) is left out."""
    from ..db import read_connection
    from .facts import resolve, run_facts
    from .mapping import final_event, start_event

    ns = ns or namespace(inst)
    refs = {tuple(s[1]) for s in signals if not isinstance(s[1], str)}
    with read_connection(inst.engine) as conn:
        uid_of = resolve(conn, refs) if refs else {}
        uids = {s[1] if isinstance(s[1], str) else uid_of.get(tuple(s[1])) for s in signals}
        by_uid = {f.uid: f for f in run_facts(conn, uids=uids - {None}).values()}
    out = []
    for kind, ref, status, at in signals:
        f = by_uid.get(ref if isinstance(ref, str) else uid_of.get(tuple(ref)))
        if f is None:
            continue
        out.append(start_event(f, ns) if kind == "START" else final_event(f, ns, status, at))
    return out


# -- the per-process emitter ---------------------------------------------------------------------
class _Emitter:
    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self.client = None
        self.exiting = False
        self.lock = threading.RLock()  # one sender at a time: the worker, exit, `replay`
        self.thread_lock = threading.Lock()
        self.spool: _Spool | None = None
        self.last_try = 0.0
        self.proc: subprocess.Popen | None = None  # the sender process, once busy
        self.proc_failed = False
        self.n_signals = 0
        self.syncs = 0
        self.many = False  # an engine said many runs will come: the sender from the first

    def submit(self, inst, signals: list) -> None:
        if self.exiting:
            self._handle(inst, signals)
            return
        self._ensure_worker()
        self.queue.put((inst, signals))

    def expect_many(self) -> None:
        """Start the sender now (in the worker thread, the one that writes to it): its start —
        importing the client, reading the instance — then overlaps the engine's first runs
        instead of adding to the wait for its last events."""
        if self.exiting or self.many:
            return
        self.many = True
        self._ensure_worker()
        self.queue.put((None, []))  # no signals: the worker starts the sender

    def _ensure_worker(self) -> None:
        with self.thread_lock:  # not self.lock: the worker holds that while it sends
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._work, name="flowprov-openlineage", daemon=True
                )
                self.thread.start()

    def _work(self) -> None:
        while True:
            items = [self.queue.get()]
            while True:  # what queued up meanwhile goes in one round: one read of the store
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                i = 0
                while i < len(items):
                    inst, signals = items[i][0], list(items[i][1])
                    i += 1
                    while i < len(items) and items[i][0] is inst:
                        signals += items[i][1]
                        i += 1
                    self._dispatch(inst, signals)
            finally:
                for _ in items:
                    self.queue.task_done()

    def _dispatch(self, inst, signals: list) -> None:
        """Hand the signals to the sender process (started once this process has had more
        than SENDER_AFTER to tell, or an engine said it will), else handle them here."""
        self.n_signals += len(signals)
        if (
            self.proc is None
            and USE_SENDER
            and not self.proc_failed
            and (self.n_signals > SENDER_AFTER or self.many)
        ):
            self._start_sender()
        if inst is None:  # expect_many's: nothing to send
            return
        if self.proc is not None:
            line = json.dumps(
                {
                    "instance": str(inst.config_path),
                    "signals": [encode_signal(x) for x in signals],
                }
            )
            try:
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()
                return
            except OSError as e:  # it died: what it had not sent is lost; say so, go on here
                logger.warning(
                    "the OpenLineage sender process ended (%s); events it had not sent are"
                    " lost, later ones are sent from this process",
                    _one_line(e),
                )
                self.proc, self.proc_failed = None, True
        self._handle(inst, signals)

    def _start_sender(self) -> None:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flowprov.openlineage.sender"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
        except OSError as e:
            logger.debug("OpenLineage sender not started (%s): events sent from here", e)
            self.proc_failed = True

    def _sync_sender(self, timeout: float | None) -> bool:
        """Wait until the sender has sent everything written to it."""
        proc = self.proc
        if proc is None:
            return True
        self.syncs += 1
        try:
            proc.stdin.write(json.dumps({"sync": self.syncs}).encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                return False
            line = proc.stdout.readline()
            if not line:
                return False
            if line.strip() == str(self.syncs).encode():
                return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is sent (or spooled); False when `timeout` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        with self.lock:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return self._sync_sender(left)

    def _handle(self, inst, signals: list) -> None:
        with self.lock:
            try:
                ns = namespace(inst)
                if self.spool is not None:
                    self._retry()
                if self.spool is not None:
                    self.spool.add(inst, ns, signals)
                    return
                events = build(inst, signals, ns)
                self._send(events)
            except Exception as e:  # noqa: BLE001 - never the engine's problem; said once
                self._start_spooling(e, inst, signals)

    def _send(self, events) -> None:
        if self.client is None:
            from openlineage.client import OpenLineageClient

            self.client = OpenLineageClient()
        for event in events:
            self.client.emit(event)

    def _start_spooling(self, error: Exception, inst, signals) -> None:
        self.spool = _Spool.create()
        self.last_try = time.monotonic()
        logger.warning(
            "cannot send OpenLineage events (%s); they are kept in %s — send them"
            " later with `flowprov replay`",
            _one_line(error),
            self.spool.path,
        )
        self.spool.add(inst, namespace(inst), signals)

    def _retry(self) -> None:
        """While spooling, try the endpoint again now and then: the whole spool in one go."""
        if time.monotonic() - self.last_try < RETRY_SECONDS:
            return
        self.last_try = time.monotonic()
        spool = self.spool
        try:
            send_spool(spool.path, self._send)
        except Exception as e:  # noqa: BLE001
            logger.debug("flowprov: OpenLineage endpoint still unreachable: %s", e)
            return
        spool.close(delete=True)
        self.spool = None

    def at_exit(self) -> None:
        """Send what waits; end the sender (it sends all it was given first). Events that come
        later (a sink's last flush at exit) are sent from this thread, after those."""
        self.flush(timeout=60)
        self.exiting = True
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.stdin.close()
                proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:
                logger.warning(
                    "the OpenLineage sender is still busy at exit (%s): left to finish", e
                )
        if self.client is not None:
            try:
                self.client.close(timeout=10)
            except Exception as e:  # noqa: BLE001
                logger.debug("flowprov: closing the OpenLineage client: %s", e)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


_emitter: _Emitter | None = None
_emitter_lock = threading.Lock()


def _the_emitter() -> _Emitter:
    global _emitter
    with _emitter_lock:
        if _emitter is None:
            _emitter = _Emitter()
            atexit.register(_emitter.at_exit)
        return _emitter


def _forget_after_fork() -> None:
    global _emitter
    _emitter = None  # the parent's thread and spool are not this process's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def submit(inst, events, applied=None) -> None:
    """Send the OpenLineage events of these (committed) flowprov events, if a transport is
    configured; never raises. `applied`: the store's results, one per event."""
    if not configured():
        return
    try:
        signals = signals_of(events, [], applied)
        if signals:
            _the_emitter().submit(inst, signals)
    except Exception as e:  # noqa: BLE001
        logger.warning("OpenLineage events not sent: %s", _one_line(e))


def expect_many() -> None:
    """An engine is about to report many runs (a Prefect flow, a Snakemake workflow): with a
    transport configured, start the sender process now rather than after SENDER_AFTER signals
    (a script's one run is still sent from its own thread). Never raises."""
    if not USE_SENDER or not configured():
        return
    try:
        _the_emitter().expect_many()
    except Exception as e:  # noqa: BLE001 - never the engine's problem
        logger.debug("flowprov: OpenLineage sender not started early: %s", e)


def submit_signals(inst, signals: list) -> None:
    if signals and configured():
        _the_emitter().submit(inst, signals)


def reset() -> None:
    """Forget this process's client, spool and namespaces (after the configuration changed):
    the next event starts afresh. What is queued is sent first."""
    global _emitter
    from ..spool import end_writers

    end_writers()  # their processes were started with the old configuration
    if _emitter is not None:
        _emitter.at_exit()  # sends what waits, ends the sender process
        if _emitter.spool is not None:
            _emitter.spool.close(delete=False)
    _emitter = None
    _namespaces.clear()


def flush(timeout: float | None = None) -> bool:
    """Wait until this process's OpenLineage events are sent or spooled."""
    return _emitter.flush(timeout) if _emitter is not None else True


# -- the spool -----------------------------------------------------------------------------------
def spool_dir() -> Path:
    from ..spool import journal_dir

    return journal_dir() / "openlineage"


class _Spool:
    """A file of this process: a header line per instance change, then one line per signal."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd
        self.instance: str | None = None

    @classmethod
    def create(cls) -> _Spool:
        folder = spool_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{os.getpid()}-{time.time_ns()}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # ours while we live; `replay` skips it
        return cls(path, fd)

    def add(self, inst, ns: str, signals: list) -> None:
        lines = []
        where = str(inst.config_path)
        if where != self.instance:
            lines.append({"format": SPOOL_FORMAT, "instance": where, "namespace": ns})
            self.instance = where
        for sig in signals:
            kind, ref, status, at = encode_signal(sig)
            lines.append({"event": kind, "run": ref, "status": status, "at": at})
        data = "".join(json.dumps(x) + "\n" for x in lines).encode()
        os.write(self.fd, data)

    def close(self, delete: bool) -> None:
        if delete:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


def _read_spool(path: Path) -> list[tuple[str, str, list]]:
    """[(instance config path, namespace, signals)] of a spool file, in order."""
    parts: list[tuple[str, str, list]] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            x = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill: what follows it never happened
        if "format" in x:
            parts.append((x["instance"], x["namespace"], []))
        elif parts:
            parts[-1][2].append(decode_signal([x["event"], x["run"], x.get("status"), x.get("at")]))
        else:
            raise ValueError(f"{path}:{n}: a signal before any header line")
    return parts


def send_spool(path: Path, send) -> int:
    """Rebuild and send the events of one spool file; returns how many were sent."""
    from ..instance import current

    n = 0
    for where, ns, signals in _read_spool(path):
        events = build(current(where), signals, ns)
        send(events)
        n += len(events)
    return n


def replay_spools() -> list[tuple[Path, int, str | None]]:
    """Send the OpenLineage events every spool file of this machine holds, oldest first, and
    delete the files sent; [(file, events sent, error or None)]. A file whose process still runs
    is left alone."""
    folder = spool_dir()
    if not folder.is_dir():
        return []
    out = []
    files = sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    if files and not configured():
        why = (
            "no OpenLineage transport is configured here (OPENLINEAGE_URL, openlineage.yml or"
            " OPENLINEAGE__TRANSPORT__* variables): kept"
        )
        return [(p, 0, why) for p in files]
    emitter = _the_emitter()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is still running
            try:
                with emitter.lock:
                    n = send_spool(path, emitter._send)
            except Exception as e:  # noqa: BLE001 - reported, the file kept
                out.append((path, 0, _one_line(e)))
                continue
            path.unlink(missing_ok=True)
            out.append((path, n, None))
        finally:
            os.close(fd)
    return out
