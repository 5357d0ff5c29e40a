"""Is a run's process still alive? What a flowprov process says about itself, and its heartbeat.

A process that opens a top-level run (a tracked script or notebook, a Snakemake workflow, a
Prefect flow) records in the run's runtime, under "liveness", who it is: host, pid, the pid's
start time (so a reused pid is not taken for it), the boot and pid namespace it lives in, and the
heartbeat interval it keeps. While the run is open, a daemon thread sends `RunAlive` for it every
interval through the run's Sink (journal first, buffered with the engine's own events).

`flowprov status` (status.py) judges from these: on the same host and boot, a pid that is gone
or now belongs to another process means the run's process is dead — lost, for certain; from
another host, a run with no sign of life for `MISSED` heartbeats and one more interval (slack for
a busy store and clocks a little apart) is lost: 2 minutes at the default interval.

FLOWPROV_HEARTBEAT sets the interval in seconds (default 30; 0 turns the heartbeat off — such runs
are judged by the same-host facts only, else after status's `--lost-after`).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading

logger = logging.getLogger("flowprov")

HEARTBEAT_ENV = "FLOWPROV_HEARTBEAT"
DEFAULT_HEARTBEAT = 30.0
MISSED = 3  # heartbeats a live process would have sent before its run is called lost


def heartbeat_interval() -> float:
    """Seconds between heartbeats (FLOWPROV_HEARTBEAT); 0: none. A bad value: the default."""
    raw = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not raw:
        return DEFAULT_HEARTBEAT
    try:
        value = float(raw)
    except ValueError:
        logger.warning(
            "%s=%r is not a number of seconds: using %g", HEARTBEAT_ENV, raw, DEFAULT_HEARTBEAT
        )
        return DEFAULT_HEARTBEAT
    return max(value, 0.0) if value == value else DEFAULT_HEARTBEAT  # NaN: the default


def silence_limit(facts: dict) -> float | None:
    """Seconds without a sign of life after which a run whose process keeps this heartbeat is
    lost; None when it keeps none."""
    beat = facts.get("heartbeat")
    if not isinstance(beat, (int, float)) or beat <= 0:
        return None
    return (MISSED + 1) * float(beat)


# -- who this process is ----------------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def pid_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc/<pid>/stat, field 22):
    the same number every time it is read for the same process; None where there is no /proc."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    try:
        # the command name (field 2) may hold spaces and parentheses: fields follow the last ")"
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def _pid_namespace(pid: int | str = "self") -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def process_facts() -> dict:
    """This process, as a run's runtime["liveness"] records it."""
    facts = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": pid_start(os.getpid()),
        "boot_id": _read("/proc/sys/kernel/random/boot_id"),
        "pid_ns": _pid_namespace(),
        "heartbeat": heartbeat_interval(),
    }
    return {k: v for k, v in facts.items() if v is not None}


def process_state(facts: dict) -> str | None:
    """ "alive" or "dead" when this machine can tell for certain, else None (another host, boot
    or pid namespace; facts this system cannot check)."""
    pid = facts.get("pid")
    if not isinstance(pid, int) or facts.get("host") != socket.gethostname():
        return None
    boot = _read("/proc/sys/kernel/random/boot_id")
    if facts.get("boot_id") and boot and facts["boot_id"] != boot:
        return "dead"  # the machine restarted since: every process of then is gone
    if facts.get("pid_ns") != _pid_namespace():
        return None  # another container on this host: its pids are not ours to look at
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return None
    started = facts.get("pid_start")
    if started is None:
        return None  # a pid that exists may be another process's now
    now = pid_start(pid)
    if now is None:
        return "dead" if _read("/proc/self/stat") else None  # gone between the two looks
    return "alive" if now == started else "dead"  # a different start: the pid was reused


# -- the heartbeat ----------------------------------------------------------------------------
class _Heart:
    """One daemon thread per process sends RunAlive for every open top-level run."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, object] = {}  # run uid → its Sink
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()
        self.pid = os.getpid()

    def start(self, sink, uid: str) -> None:
        interval = heartbeat_interval()
        if interval <= 0:
            return
        with self.lock:
            self.runs[uid] = sink
            if self.thread is None or not self.thread.is_alive():
                self.stopped.clear()
                self.thread = threading.Thread(
                    target=self._loop, args=(interval,), name="flowprov-heartbeat", daemon=True
                )
                self.thread.start()

    def stop(self, uid: str) -> None:
        with self.lock:
            self.runs.pop(uid, None)

    def _loop(self, interval: float) -> None:
        from .events import RunAlive, RunRef
        from .spool import FLUSH_SECONDS

        while not self.stopped.wait(interval):
            with self.lock:
                if os.getpid() != self.pid:
                    return  # a forked child has no runs of its own here
                runs = list(self.runs.items())
            sinks = {}
            for uid, sink in runs:
                try:
                    sink.send([RunAlive(run=RunRef(uid=uid))], buffered=True)
                    sinks[id(sink)] = sink
                except Exception as e:  # noqa: BLE001 - never the user's problem
                    logger.debug("flowprov heartbeat of Run('%s'): %s", uid, e)
            # buffered: written with the engine's own events; if none come, on our own shortly
            if sinks and not self.stopped.wait(FLUSH_SECONDS):
                for sink in sinks.values():
                    try:
                        sink.flush()
                    except Exception:  # noqa: BLE001
                        pass

    def shutdown(self) -> None:
        self.stopped.set()

    def after_fork_in_child(self) -> None:
        # the child is another process: its parent's runs are the parent's to keep alive
        self.lock = threading.Lock()
        self.runs = {}
        self.thread = None
        self.stopped = threading.Event()
        self.pid = os.getpid()


_heart = _Heart()
atexit.register(_heart.shutdown)  # no heartbeat while the interpreter tears down
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _heart.after_fork_in_child())


def keep_alive(sink, run_uid: str) -> None:
    """Send RunAlive for this run through `sink` every heartbeat interval until `let_go`."""
    try:
        _heart.start(sink, run_uid)
    except Exception as e:  # noqa: BLE001 - e.g. no more threads: the run is just not beaten for
        logger.debug("flowprov: no heartbeat for Run('%s'): %s", run_uid, e)


def let_go(run_uid: str) -> None:
    """The run ended: no more heartbeats for it."""
    _heart.stop(run_uid)
