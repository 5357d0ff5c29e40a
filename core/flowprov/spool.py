"""Never lose an event: every event an engine plugin hands over is on local disk first.

Engine adapters hand their events to a `Sink`. Before `send` returns, the events are appended to
the sink's *journal* — an append-only JSON-lines file of this process in the cache folder
(`<cache_dir>/journal/`), written with one write() call per send and never fsync'ed: the OS page
cache survives a SIGKILL of the process (an OOM kill), which is what the journal is for. The sink
then applies its events to the store, in one transaction about every FLUSH_SECONDS, and empties
the journal back to its header line. A process that ends normally deletes its journal.

The journal is also the spool: if the store cannot be reached, the sink warns once and stops
writing to it; events keep going to the journal, which outlives the process. A journal left
behind — by a killed process, or one that could not reach its store — is *pending*:

- `flowprov replay` (no arguments) applies every pending journal of this machine to the instance
  its header names, then deletes it;
- the next sink that reaches the same instance applies pending journals first, by itself.

A journal's writer holds an exclusive lock (flock) on it while it lives; the kernel drops the lock
when the process dies however it dies, so a journal that can be locked is no one's — a live
process's journal is never applied. Applying is idempotent (events carry natural keys): a journal
applied twice, or events that had reached the store just before a kill, change nothing.
`flowprov replay FILE` applies one journal, or a spool file of an earlier flowprov (lines of
event batches, no header; applied to the current instance).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .environments import Announcer
from .events import EventBatch

try:
    import fcntl
except ImportError:  # Windows: liveness falls back to the writer's pid
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("flowprov")

FORMAT = 1
FLUSH_SECONDS = 0.5
RETRY_SECONDS = 30.0  # a sink that lost its store tries it again this often
_REPLAY_CHUNK = 2000  # events per transaction when applying a journal


def journal_dir() -> Path:
    from ._settings import settings

    return settings.cache_dir / "journal"


# -- reading journals and spool files -----------------------------------------------------------
@dataclass
class Contents:
    header: dict | None  # None: a spool file of an earlier flowprov
    batches: list[EventBatch] = field(default_factory=list)
    damaged_tail: bool = False  # the last line was cut short (killed mid-write) and skipped

    @property
    def events(self) -> Iterator:
        for b in self.batches:
            yield from b.events

    @property
    def n_events(self) -> int:
        return sum(len(b.events) for b in self.batches)


def _header(line: str) -> dict | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "flowprov_journal" in data else None


def read(path: Path) -> Contents:
    """The header (of a journal) and event batches of a journal or spool file. A last line cut
    short is skipped with a warning; damage anywhere else is a ValidationError naming the line."""
    from pydantic import ValidationError as PydanticError

    from .errors import ValidationError

    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    # a complete file ends with "\n": its last element is ""; anything else there is a cut line
    tail = lines.pop()
    contents = Contents(header=_header(lines[0]) if lines else None)
    numbered = list(enumerate(lines, 1))[1 if contents.header else 0 :]
    if tail.strip():
        numbered.append((len(lines) + 1, tail))
    for n, line in numbered:
        if not line.strip():
            continue
        try:
            contents.batches.append(EventBatch.model_validate_json(line))
        except PydanticError as e:
            if n == numbered[-1][0]:  # killed mid-write: what came before it is whole
                contents.damaged_tail = True
                logger.warning("%s, line %d: cut short (a write interrupted); skipped", path, n)
                continue
            raise ValidationError(
                f"{path}, line {n}: not a flowprov event batch ({e.errors()[0]['msg']})"
            ) from e
    return contents


def _apply(store, contents: Contents) -> None:
    """Apply in order, a few thousand events per transaction."""
    chunk: list = []
    for event in contents.events:
        chunk.append(event)
        if len(chunk) >= _REPLAY_CHUNK:
            store.apply(chunk)
            chunk = []
    if chunk:
        store.apply(chunk)


# -- liveness ------------------------------------------------------------------------------------
def _lock(fd: int) -> bool | None:
    """Take the journal's exclusive lock without waiting: True, False (someone holds it), None
    (locks are not available here)."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class _Claim:
    """A pending journal, locked by this process for applying (or None from `claim`)."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def release(self, delete: bool) -> None:
        if delete:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


def claim(path: Path) -> tuple[_Claim | None, dict | None, str]:
    """Lock a journal whose writer is gone: (claim, header, ""), or (None, header, why not) when
    it is live, written on another host, or gone."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None, None, "gone (applied by another process)"
    try:
        with open(fd, encoding="utf-8", errors="replace", closefd=False) as f:
            header = _header(f.readline())
        why = _why_not(path, fd, header)
        if why:
            os.close(fd)
            return None, header, why
        return _Claim(path, fd), header, ""
    except BaseException:
        os.close(fd)
        raise


def _why_not(path: Path, fd: int, header: dict | None) -> str:
    if header is None:
        return "not a flowprov journal (no header line)"
    pid = header.get("pid")
    if header.get("host") != socket.gethostname():
        return (
            f"written on host {header.get('host')!r}: replay it there, or with "
            f"`flowprov replay {path}` once its process {pid} has ended"
        )
    locked = _lock(fd)
    unlocked_writer = locked is None or not header.get("locked", True)
    if locked is False or (unlocked_writer and isinstance(pid, int) and _pid_alive(pid)):
        return f"still being written by process {pid}"
    try:
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            return ""
    except FileNotFoundError:
        pass
    return "gone (applied by another process)"  # deleted between our open and our lock


# -- which store a journal belongs to -----------------------------------------------------------
def _instance_identity(instance: str | None) -> dict:
    """What a journal's header says about its instance: config path, name and uid."""
    from . import config as C

    try:
        path = C.locate_instance_config(instance).resolve()
        cfg = C.load_instance_config(path)
        return {"instance": str(path), "instance_name": cfg.name, "instance_uid": cfg.uid}
    except Exception as e:  # noqa: BLE001 - no instance yet: the journal keeps the events anyway
        return {"instance": instance, "instance_error": str(e)[:300]}


def _store_for(header: dict, path: Path):
    """The store of the instance a journal's header names; an error when it cannot be found."""
    from . import config as C
    from .errors import NoInstanceError
    from .instance import current

    uid, name, where = (
        header.get("instance_uid"),
        header.get("instance_name"),
        header.get("instance"),
    )
    if uid is None:
        raise NoInstanceError(
            f"{path}: its writer knew no instance ({header.get('instance_error', 'none')}); "
            f"`flowprov replay {path}` applies it to the current instance"
        )
    for candidate in (where, name):
        try:
            p = C.locate_instance_config(candidate)
        except Exception:  # noqa: BLE001 - try the next way of finding it
            continue
        if C.load_instance_config(p).uid == uid:
            return current(str(p)).store
    raise NoInstanceError(
        f"{path}: belongs to instance {name!r} (uid {uid}, config {where}), "
        "which is not configured here"
    )


# -- replay ---------------------------------------------------------------------------------------
@dataclass
class Replayed:
    path: Path
    batches: int = 0
    events: int = 0
    damaged_tail: bool = False
    skipped: str = ""  # why it was not applied (live, another host)
    error: str = ""  # why applying failed (the journal is kept)


def replay(path: str | os.PathLike) -> tuple[int, int]:
    """Apply one journal (to the instance its header names; then delete it) or spool file (to the
    current instance). Returns (batches, events)."""
    from .errors import FileMissingError, ValidationError
    from .instance import current

    p = Path(path)
    if not p.is_file():
        raise FileMissingError(f"no journal or spool file at {p}")
    held, header, why = claim(p)
    if header is None:  # a spool file
        contents = read(p)
        _apply(current().store, contents)
        return len(contents.batches), contents.n_events
    if held is None and not why.startswith("written on host"):
        raise ValidationError(f"cannot replay {p}: {why}")
    try:
        contents = read(p)
        if contents.batches:
            # a journal whose writer knew no instance: the user chose to apply it to the current one
            known = header.get("instance_uid") is not None
            _apply(_store_for(header, p) if known else current().store, contents)
        p.unlink(missing_ok=True)
    finally:
        if held is not None:
            held.release(delete=False)
    return len(contents.batches), contents.n_events


def _by_age(folder: Path) -> list[Path]:
    aged = []
    for p in folder.glob("*.jsonl") if folder.is_dir() else ():
        try:
            aged.append((p.stat().st_mtime, p))
        except FileNotFoundError:  # applied and deleted meanwhile
            continue
    return [p for _, p in sorted(aged)]


def _remove_stale_tmp(folder: Path) -> None:
    """A process killed while creating its journal leaves a `.tmp` file with no events."""
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
        try:
            if time.time() - tmp.stat().st_mtime > 3600:
                tmp.unlink()
        except FileNotFoundError:
            continue


def replay_pending(instance_uid: str | None = None, exclude: Path | None = None) -> list[Replayed]:
    """Apply every pending journal of this machine (of one instance, if given) and delete it,
    oldest first. Journals still being written are skipped; one that fails to apply is kept and
    reported."""
    out = []
    if instance_uid is None:
        _remove_stale_tmp(journal_dir())
    for p in _by_age(journal_dir()):
        if p == exclude:
            continue
        held, header, why = claim(p)
        if instance_uid is not None and (header or {}).get("instance_uid") != instance_uid:
            if held is not None:
                held.release(delete=False)
            continue
        if held is None:
            if not why.startswith("gone"):
                out.append(Replayed(p, skipped=why))
            continue
        out.append(_replay_claimed(held, header))
    return out


def _replay_claimed(held: _Claim, header: dict) -> Replayed:
    result, delete = Replayed(held.path), False
    try:
        contents = read(held.path)
        if contents.batches:
            _apply(_store_for(header, held.path), contents)
        result.batches, result.events = len(contents.batches), contents.n_events
        result.damaged_tail, delete = contents.damaged_tail, True
    except Exception as e:  # noqa: BLE001 - one bad journal must not hold up the others
        result.error = str(e) or repr(e)
    finally:
        held.release(delete)
    return result


# -- the writer's side ---------------------------------------------------------------------------
class Journal:
    """This process's append-only journal for one sink, locked while it lives."""

    def __init__(self, source: str, identity: dict):
        folder = journal_dir()
        folder.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        stem = f"{source}-{os.getpid()}-{os.urandom(4).hex()}"
        tmp = folder / f".{stem}.tmp"  # not a journal until it has its header and lock
        self.fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0),
            0o600,
        )
        try:
            locked = _lock(self.fd)
            header = {"flowprov_journal": FORMAT, "source": source, "host": host}
            header |= {"pid": os.getpid(), "locked": bool(locked), **identity}
            self._write_all((json.dumps(header) + "\n").encode())
            self.path = folder / f"{stem}.jsonl"
            os.replace(tmp, self.path)
        except BaseException:
            os.close(self.fd)
            tmp.unlink(missing_ok=True)
            raise
        self.header_size = self.size = os.fstat(self.fd).st_size
        self.pid = os.getpid()
        _journals.add(self)

    @property
    def pending(self) -> bool:
        return self.size > self.header_size

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def append(self, events: Sequence) -> bytes:
        """One line, one write() (two only if the OS took part of it); returns the line."""
        data = (EventBatch(events=list(events)).model_dump_json() + "\n").encode()
        try:
            self._write_all(data)
        except OSError:
            os.ftruncate(self.fd, self.size)  # no half line in the middle of the journal
            raise
        self.size += len(data)
        return data

    def applied(self) -> None:
        """Everything in the journal is in the store: back to the header."""
        if self.pending and self.fd >= 0:
            os.ftruncate(self.fd, self.header_size)
            self.size = self.header_size

    def close(self) -> None:
        """Close; delete the journal unless it still holds events no store has."""
        if self.fd < 0:
            return
        if not self.pending and self.pid == os.getpid():
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1


_journals: weakref.WeakSet = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child must not hold its parent's journals open: the lock would outlive the
    parent, and a killed parent's journal would look live. The child starts its own."""
    for j in list(_journals):
        if j.fd >= 0:
            os.close(j.fd)
            j.fd = -1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_live_sinks: weakref.WeakSet = weakref.WeakSet()


def flush_all(openlineage: bool = False) -> None:
    """Write every sink's buffered events now (before reading a run that may still be buffered);
    with `openlineage`, also wait for the OpenLineage events their writer processes send."""
    for sink in list(_live_sinks):
        sink.flush(openlineage=openlineage)


def end_writers() -> None:
    """Apply what every sink holds and end their writer processes (the next busy sink starts a
    new one, with the environment as it is then: an OpenLineage configuration changed since)."""
    for sink in list(_live_sinks):
        sink.end_writer()


def _at_exit() -> None:
    for sink in list(_live_sinks):
        sink.close()


atexit.register(_at_exit)


class Sink:
    """Where an adapter sends its events. Thread-safe; `send` never raises.

    `send(events)` appends the events to this process's journal (so they survive a kill), then
    applies them to the store; `send(events, buffered=True)` applies them together with others in
    one transaction about every FLUSH_SECONDS (or when 1,000 are waiting): an engine reporting
    many short tasks otherwise pays a transaction per event batch. `flush()` applies what waits.
    Once a sink has applied more than store_writer.WRITER_AFTER events, a writer process applies
    them (store_writer.py): the engine's process only writes its journal; `flush()` waits for
    the writer.

    `spool_path` is used only when no journal can be written in the cache folder: then, if the
    store cannot be reached either, events are appended (and fsync'ed) there, as before journals.
    """

    def __init__(self, spool_path: str | os.PathLike, source: str, instance: str | None = None):
        self.spool_path = Path(spool_path)
        self.source = source
        self.instance = instance  # a name or yaml path; None: the current instance
        self.spooling = False  # the store could not be reached: events wait in the journal
        self.spooled = 0
        self._lock = threading.RLock()
        self._buffer: list = []
        self._lines: list[bytes] = []  # the buffered events' journal lines (for a writer)
        self._applied = 0  # events applied by this process (a writer starts past WRITER_AFTER)
        self._writer = None  # store_writer.Writer, once busy
        self._writer_failed = False
        self._last_flush = time.monotonic()
        self._last_try = 0.0
        self._identity: dict | None = None
        self._journal: Journal | None = None
        self._journal_failed = False
        self._recovered = False
        self._closed = False
        self._announced: tuple[int, Announcer] | None = None  # (pid, its environments sent)
        _live_sinks.add(self)

    @property
    def journal_path(self) -> Path | None:
        return self._journal.path if self._journal is not None else None

    def send(self, events: Sequence, buffered: bool = False) -> None:
        if not events and not self._buffer:
            return
        with self._lock:
            if events:
                events = self._announce(events)
                line = self._journal_append(events)
                self._buffer.extend(events)
                if line is not None:
                    self._lines.append(line)
            due = len(self._buffer) >= 1000 or time.monotonic() - self._last_flush >= FLUSH_SECONDS
            if not buffered:
                self.flush()
            elif due:
                self._ship()
            if self._closed:  # sent to after the exit-time close
                self.close()

    def flush(self, openlineage: bool = False) -> None:
        """Apply what waits, and wait for the writer to have applied it (and sent its
        OpenLineage events, if asked)."""
        with self._lock:
            self._ship()
            if self._writer is not None:
                try:
                    self._writer.wait(openlineage=openlineage)
                    self._writer_caught_up()
                except Exception as e:  # noqa: BLE001 - WriterGone, or an answer it garbled
                    self._writer_gone(e)

    def _ship(self) -> None:
        """Send what waits on its way: to the writer (not waiting for it), or to the store."""
        events, self._buffer = self._buffer, []
        lines, self._lines = self._lines, []
        self._last_flush = time.monotonic()
        if events:
            self._write(events, lines)

    def close(self) -> None:
        """Apply what waits; close and delete the journal if everything reached the store (a
        journal still holding events stays open for what comes later: a run's end at exit)."""
        with self._lock:
            self._closed = True
            self.end_writer()
            if self._journal is not None and not self._journal.pending:
                self._journal.close()
                self._journal = None

    def end_writer(self) -> None:
        """Apply what waits; end the writer process, if any."""
        with self._lock:
            self.flush()
            writer, self._writer = self._writer, None
            if writer is not None and writer.pid == os.getpid():
                writer.close()

    def _announce(self, events: Sequence) -> Sequence:
        """An environment goes to the journal (and the store) in full once per process, then by
        its digest: a flow of 1,000 tasks in one interpreter carries its packages once."""
        if self._announced is None or self._announced[0] != os.getpid():
            self._announced = (os.getpid(), Announcer())
        announce = self._announced[1]
        out = None
        for i, e in enumerate(events):
            env = getattr(e, "environment", None)
            if env is None or isinstance(env, str):
                continue
            ref = announce(env)
            if ref is not env:
                if out is None:
                    out = list(events)
                out[i] = e.model_copy(update={"environment": ref})
        return events if out is None else out

    # -- the journal -----------------------------------------------------------------------------
    def _journal_append(self, events: Sequence) -> bytes | None:
        if self._journal_failed:
            return None
        try:
            if self._journal is None or self._journal.pid != os.getpid():  # new, or forked
                if self._identity is None:
                    self._identity = _instance_identity(self.instance)
                self._journal = Journal(self.source, self._identity)
                # a sink dropped before exit closes its journal too (deleted if all applied)
                weakref.finalize(self, self._journal.close).atexit = False
            return self._journal.append(events)
        except Exception as e:  # noqa: BLE001 - the user's work goes on; say so once
            self._journal_failed = True
            logger.warning(
                "flowprov (%s): cannot write its journal in %s (%s): events not yet in the store"
                " would be lost if this process were killed",
                self.source,
                journal_dir(),
                e,
            )

    def _instance_ref(self) -> str | None:
        ident = self._identity or {}
        return ident["instance"] if "instance_uid" in ident else self.instance

    # -- the store -------------------------------------------------------------------------------
    @property
    def _journaling(self) -> bool:
        """Every event sent is in this process's journal."""
        j = self._journal
        return j is not None and not self._journal_failed and j.fd >= 0 and j.pid == os.getpid()

    def _write(self, events: Sequence, lines: list[bytes]) -> None:
        if not self.spooling and self._to_writer(events, lines):
            return
        if not self.spooling:
            try:
                from .instance import current

                store = current(self._instance_ref()).store
                self._recover()
                store.apply(events)
                self._applied += len(events)
                if self._journal is not None:
                    self._journal.applied()
                return
            except Exception as e:  # noqa: BLE001 - whatever failed, the user's work goes on
                self._start_spooling(e)
        if self._journaling:
            self.spooled += len(events)  # they wait in the journal
            self._retry()
        else:
            self._spool_file(events)

    # -- the writer process ------------------------------------------------------------------------
    def _to_writer(self, events: Sequence, lines: list[bytes]) -> bool:
        """Hand the events to the writer process (started once this sink has applied more than
        WRITER_AFTER itself); False: apply them here. Only while the journal holds every event
        (what the writer has not acknowledged is there if it fails) and the line of each."""
        from . import store_writer

        w = self._writer
        if w is not None and w.pid != os.getpid():  # forked: the parent's writer is not ours
            w = self._writer = None
        if not self._journaling or not lines:
            return False
        if w is None:
            if (
                self._writer_failed
                or self._applied <= store_writer.WRITER_AFTER
                or not store_writer.enabled()
            ):
                return False
            try:
                w = self._writer = store_writer.Writer()
            except OSError as e:
                logger.debug("flowprov (%s): no store writer process (%s)", self.source, e)
                self._writer_failed = True
                return False
        try:
            w.ship(self._instance_ref(), lines)
            self._writer_caught_up()
        except Exception as e:  # noqa: BLE001
            self._writer_gone(e)
        return True

    def _writer_caught_up(self) -> None:
        """Everything in the journal is in the store once the writer is idle and nothing waits."""
        if self._writer is not None and self._writer.idle and not self._buffer:
            if self._journal is not None:
                self._journal.applied()

    def _writer_gone(self, error: Exception) -> None:
        """The writer died or could not apply a batch: this process writes again, from the
        journal (it holds everything not acknowledged; applying twice changes nothing)."""
        writer, self._writer, self._writer_failed = self._writer, None, True
        logger.debug("flowprov (%s): store writer stopped: %s", self.source, error)
        if writer is not None:
            writer.close(timeout=5)
        try:
            from .instance import current

            _apply(current(self._instance_ref()).store, read(self._journal.path))
            self._journal.applied()
        except Exception as e:  # noqa: BLE001 - the store itself is away: spool
            self._start_spooling(e)

    def _start_spooling(self, error: Exception) -> None:
        self.spooling = True
        self._last_try = time.monotonic()
        where = self._journal.path if self._journaling else self.spool_path
        how = "`flowprov replay`" if self._journaling else f"`flowprov replay {where}`"
        logger.warning(
            "flowprov (%s): cannot write to the provenance store (%s); events are kept in %s"
            " — apply them later with %s",
            self.source,
            error,
            where,
            how,
        )

    def _retry(self) -> None:
        """While spooling, try the store again now and then: the whole journal in one go."""
        if time.monotonic() - self._last_try < RETRY_SECONDS:
            return
        self._last_try = time.monotonic()
        try:
            from .instance import current

            store = current(self._instance_ref()).store
            _apply(store, read(self._journal.path))
        except Exception:  # noqa: BLE001 - still away: keep spooling, no new warning
            return
        self._journal.applied()
        self.spooling = False
        self._recover()
        logger.warning(
            "flowprov (%s): the provenance store is back; kept events applied", self.source
        )

    def _recover(self) -> None:
        """Once per sink, when its store answers: apply journals that processes writing to the
        same instance left behind (killed, or unable to reach it)."""
        if self._recovered:
            return
        self._recovered = True
        uid = (self._identity or _instance_identity(self.instance)).get("instance_uid")
        if uid is None:
            return
        own = self._journal.path if self._journal is not None else None
        try:
            results = replay_pending(instance_uid=uid, exclude=own)
        except Exception as e:  # noqa: BLE001 - our own events go on regardless
            logger.warning("flowprov (%s): could not look for pending journals: %s", self.source, e)
            return
        for r in results:
            if r.error:
                logger.warning(
                    "flowprov (%s): could not apply %s: %s", self.source, r.path, r.error
                )
            else:
                logger.info(
                    "flowprov (%s): applied %d events a process left in %s",
                    self.source,
                    r.events,
                    r.path,
                )

    def _spool_file(self, events: Sequence) -> None:
        """Last resort when no journal could be written: the spool file, fsync'ed."""
        try:
            append(self.spool_path, events)
            self.spooled += len(events)
        except Exception as e:  # noqa: BLE001 - say so, do not break the workflow
            logger.error(
                "flowprov (%s): could not spool %d events to %s: %s",
                self.source,
                len(events),
                self.spool_path,
                e,
            )


def append(path: Path, events: Sequence) -> None:
    """Append one batch as a line to a spool file, durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = EventBatch(events=list(events)).model_dump_json() + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
