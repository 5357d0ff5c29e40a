"""The current run: `fp.track()` / `fp.finish()` for scripts and notebooks, `with Run(...)`.

`track()` makes a Transform for the calling script or notebook — keyed by its repository's
remote and its path in the repository, else by its absolute location (never by a file name or a
path inside some repository alone: see project_key), versioned by
its source code (a notebook's code cells only, so re-executing it does not make a new version) —
and starts a Run of it. A script's run is finished when the process ends, if `finish()` was not
called, with the ending it had: completed, failed (exit code, uncaught exception) or aborted
(SIGTERM, SIGHUP, SIGINT) — see "how a tracked script ends" below.

A run lives in the instance it was started in: Run.save() pins that Instance to the Run object,
and everything of the run — its end (finish(), `with Run`, the exit hooks), the artifacts saved
as its outputs, the inputs cache()/load()/open() notice — goes there, whatever FLOWPROV_INSTANCE
says later (a script may point it elsewhere midway; a run cannot have inputs, outputs or an end
in another database). Saves outside any run follow the environment."""

from __future__ import annotations

import atexit
import builtins
import contextvars
import dis
import functools
import json
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from .errors import NoCurrentRun, ValidationError

logger = logging.getLogger("flowprov")

_current_run: contextvars.ContextVar = contextvars.ContextVar("flowprov_run", default=None)
_tracked = None  # the run of fp.track(), visible from every thread


def current_run():
    """The run that reads and writes are attributed to (a `with Run` block wins over `track()`)."""
    return _current_run.get() or _tracked


def record_input(artifact, is_run_input: bool | None) -> None:
    from ._settings import settings
    from .events import ArtifactRef, ArtifactUsed, RunRef

    track = settings.track_run_inputs if is_run_input is None else is_run_input
    if not track:
        return
    run = current_run()
    if run is None:
        if is_run_input:
            logger.warning(
                "no current run: call fp.track() to record Artifact('%s') as an input", artifact.uid
            )
        return
    home = run_instance(run)
    if home is not None and not _is_current(home):
        # the artifact was found (and its bytes read) through the instance the environment names
        # now: it is not a record of the run's database, so it cannot be the run's input there
        logger.warning(
            "Artifact('%s') was read through instance %r, but Run('%s') lives in instance %r "
            "(the current instance changed after the run started): not recorded as its input",
            artifact.uid,
            _current_name(),
            run.uid,
            home.name,
        )
        return
    if artifact.run_id is not None and artifact.run_id == run.save().id:
        return  # reading one's own output is not an input
    background_sink(run).send(
        [ArtifactUsed(run=RunRef(uid=run.uid), artifact=ArtifactRef(uid=artifact.uid))]
    )


def run_instance(run):
    """The Instance a run was started in by this process (pinned by Run.save()), where all its
    events go; None for a run known only from the database."""
    return run.__dict__.get("_instance")


def pin_run(run, inst) -> None:
    """Pin a Run object to the instance it lives in (engine plugins' runs, known by uid)."""
    object.__setattr__(run, "_instance", inst)


def _is_current(inst) -> bool:
    """Does the environment still name `inst`? One config lookup (what every read already costs);
    the instance's uid decides when it is named another way (a name, then a yaml path)."""
    from . import config as C
    from .errors import NoInstanceError

    try:
        path = C.locate_instance_config()
    except NoInstanceError:
        return False
    if path == inst.config_path:
        return True
    from .instance import current

    return current().config.uid == inst.config.uid


def _current_name() -> str:
    from .instance import current

    try:
        return current().name
    except Exception:  # noqa: BLE001 - only for a message
        return "(none)"


def instance_for_save(artifacts):
    """The instance a batch of artifacts is saved in: that of the run they are outputs of (their
    own `run=`, else the current run), where that run started, else the current instance."""
    cur = current_run()
    homes = {}
    for art in artifacts:
        run = art.__dict__.get("_run") or cur
        home = run_instance(run) if run is not None else None
        homes[home.config.uid if home is not None else None] = home
    if None in homes:
        from .instance import current

        here = current()
        homes.pop(None)
        homes.setdefault(here.config.uid, here)
    if len(homes) > 1:
        names = ", ".join(sorted(repr(h.name) for h in homes.values()))
        raise ValidationError(
            f"cannot save these artifacts together: their runs live in different instances "
            f"({names}); save each run's artifacts separately"
        )
    return next(iter(homes.values()))


# instance config path → its Sink; a few at most: a dropped Sink closes its journal (kept on
# disk for `flowprov replay` if the store was away) and is made again when needed
_background: dict[str, object] = {}
_BACKGROUND_SINKS = 4
_background_lock = threading.Lock()


def background_sink(run=None):
    """Where the API's background writes go — a run input noticed by cache()/load()/open(), the
    tracked run's end at exit: to the store, or, when it cannot be reached, to a spool file in the
    cache folder (`flowprov replay` applies it), with one warning. The user's code goes on.
    A run's events go to the instance the run started in; without a run, the current one's."""
    from . import config as C

    home = run_instance(run) if run is not None else None
    path = home.config_path if home is not None else C.locate_instance_config()
    sink = _background.get(str(path))
    if sink is None:
        from ._settings import settings
        from .spool import Sink

        with _background_lock:
            sink = _background.get(str(path))
            if sink is None:
                while len(_background) >= _BACKGROUND_SINKS:
                    _background.pop(next(iter(_background)))  # the oldest
                spool = settings.cache_dir / "spool" / f"{path.stem}.jsonl"
                # resolved: a relative FLOWPROV_INSTANCE must still name it after a chdir
                sink = Sink(spool, source="API", instance=str(path.resolve()))
                _background[str(path)] = sink
    return sink


def environment():
    """The running interpreter's software (every installed distribution; its conda packages),
    read once per interpreter. None, with a warning, if it cannot be read: the run is recorded
    without it rather than not at all."""
    from .environments import python_environment

    try:
        return python_environment()
    except Exception as e:  # noqa: BLE001 - a broken package folder must not stop a run
        logger.warning("flowprov: cannot read this interpreter's installed packages: %s", e)
        return None


# -- what is running us ----------------------------------------------------------------------
def _ipython():
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def _is_notebook(ip) -> bool:
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def project_key(path: Path, within: Path | None = None) -> str:
    """The code's identity. Inside a git work tree whose repository has a remote: the remote and
    the path in the repository ("github.com/lab/screen/scripts/qc.py" — the same in every clone,
    on every machine). Otherwise (no repository, or one with no remote to tell it from another
    repository holding a file at the same path): relative to `within` (an engine's working
    directory) if inside it, else the absolute location. Two different files never become
    versions of one transform because they share a name or a path inside their repositories."""
    for parent in path.parents:
        if (parent / ".git").exists():
            remote = git_remote(parent)
            if remote is not None:
                return f"{remote}/{path.relative_to(parent).as_posix()}"
            break
    if within is not None:
        try:
            return path.relative_to(within.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def git_remote(work_tree: Path) -> str | None:
    """The repository's `origin` (else first) remote as host/path — no scheme, user, password or
    .git suffix — read from its config file (no git program needed); None without a remote."""
    import configparser
    import re

    git = work_tree / ".git"
    if git.is_file():  # a linked work tree or submodule: "gitdir: <path>"
        text = git.read_text(errors="replace").strip()
        if not text.startswith("gitdir:"):
            return None
        git = (work_tree / text[len("gitdir:") :].strip()).resolve()
        common = git / "commondir"
        if common.is_file():
            git = (git / common.read_text().strip()).resolve()
    cfg = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        cfg.read(git / "config", encoding="utf-8")
    except (OSError, configparser.Error):
        return None
    remotes = [s for s in cfg.sections() if s.startswith('remote "')]
    remotes.sort(key=lambda s: s != 'remote "origin"')
    for section in remotes:
        url = cfg.get(section, "url", fallback="").strip()
        if not url:
            continue
        url = re.sub(r"^[a-z+]+://", "", url)  # https://, ssh://, git+ssh://, file://
        url = re.sub(r"^[^@/]*@", "", url)  # user[:password]@
        if re.match(r"^[^/:]+:(?!\d+/)", url):  # scp-like git@host:org/repo
            url = url.replace(":", "/", 1)
        url = url.removesuffix("/").removesuffix(".git")
        return url or None
    return None


def _notebook_source(path: Path) -> tuple[str, str | None]:
    """(code of the code cells, title from the first '# ' markdown heading)."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValidationError(f"cannot read notebook {path}: {e}") from e
    code, title = [], None
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if cell.get("cell_type") == "code":
            code.append(src)
        elif cell.get("cell_type") == "markdown" and title is None:
            for line in src.splitlines():
                if line.startswith("# "):
                    title = line[2:].strip()
                    break
    return "\n\n".join(code), title


def _detect(path: str | os.PathLike | None):
    """(type, file path) of the calling notebook or script."""
    ip = _ipython()
    if path is not None:
        p = Path(path).resolve()
        if not p.is_file():
            raise ValidationError(f"fp.track(path=...): no such file {p}")
        return ("notebook" if p.suffix == ".ipynb" else "script"), p
    if _is_notebook(ip):
        from .notebooks import find_notebook

        p, how = find_notebook(ip)
        logger.info("running notebook %s (found by %s)", p, how)
        return "notebook", p
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    if file and Path(file).is_file():
        return "script", Path(file).resolve()
    raise ValidationError(
        "fp.track() could not tell which script or notebook is running (interactive session?): "
        "pass fp.track(path=...) or use `with fp.Run(transform=...)`"
    )


def track(
    transform=None,
    *,
    path: str | os.PathLike | None = None,
    uid: str | None = None,
    name: str | None = None,
    version: str | None = None,
    params: dict | None = None,
):
    """Start tracking this script or notebook (or the given Transform): returns the new Run."""
    global _tracked
    from .records import Run, Transform

    if transform is None:
        kind, p = _detect(path)
        if kind == "notebook":
            source, title = _notebook_source(p)
        else:
            source, title = p.read_text(errors="replace"), None
        transform = Transform(
            name=name or title or p.name,
            type=kind,
            key=project_key(p),
            version=version,
            source_code=source,
            uid=uid,
        )
    if _tracked is not None and _tracked.finished_at is None:
        logger.info("finishing the previously tracked Run('%s')", _tracked.uid)
        _let_go(_tracked)
        _tracked.finish()
    _ensure_log_handler()
    transform.save()
    run = Run(transform=transform, params=params).save()
    # known from the start: reads keep working if the database goes away
    run_instance(run).storages()
    # made now, while a relative FLOWPROV_INSTANCE path still names it
    _keep_alive(run, background_sink(run))
    _tracked = run
    logger.info("tracking %s Transform('%s') in Run('%s')", transform.type, transform.uid, run.uid)
    if transform.type == "script":
        _install_exit_hooks()
    return run


def finish(status: str = "completed", error: str | None = None):
    """Finish the tracked run (status completed, finished_at now)."""
    global _tracked
    if _tracked is None:
        raise NoCurrentRun("fp.finish(): no run is tracked; call fp.track() first")
    run, _tracked = _tracked, None
    _let_go(run)
    run.finish(status, error)
    logger.info("finished Run('%s'): %s", run.uid, status)
    return run


def _keep_alive(run, sink) -> None:
    """Note who runs it (host, pid and its start time: see liveness.py) and keep it alive with a
    heartbeat while it is open, so that `flowprov status` can tell a killed script from a running
    one. Never raises."""
    from .events import RunAlive, RunRef
    from .liveness import keep_alive, process_facts

    try:
        sink.send([RunAlive(run=RunRef(uid=run.uid), runtime={"liveness": process_facts()})])
        keep_alive(sink, run.uid)
    except Exception as e:  # noqa: BLE001 - the run is recorded; only its liveness is not
        logger.warning("flowprov: cannot note the liveness of Run('%s'): %s", run.uid, e)


def _let_go(run) -> None:
    from .liveness import let_go

    let_go(run.uid)


# -- how a tracked script ends ------------------------------------------------------------------
# Every ending is recorded as what it was, and the process then ends exactly as it would have:
# - the script ran to its end, or exited with code 0: completed;
# - sys.exit(n) / exit(n) / quit(n) with n != 0: failed, "exit code n";
# - an uncaught exception: failed with its traceback (KeyboardInterrupt: aborted, SIGINT);
# - SIGTERM (SLURM's cancel and time-out), SIGHUP, SIGINT whose action was the default: aborted,
#   "terminated by SIGTERM" — then the signal is raised again with its default action, so the
#   shell and the scheduler see the same death. A handler the program installed before track()
#   is called as before (the signal is noted; the program's own ending is recorded); one installed
#   later simply replaces ours;
# - SIGKILL, os._exit(): nothing can run; the run stays "started" (unfinished), which is the truth.
# The exit code or signal is kept in the run's environment: {"exit": {"code": 2}} or
# {"exit": {"signal": "SIGTERM"}}.
_END_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")
_MAIN_THREAD = threading.main_thread()
_RETURNS = ("RETURN_VALUE", "RETURN_CONST")


class _Ending:
    """What this process has seen of its own ending (only the tracking process's own)."""

    installed = False
    pid: int | None = None
    main_frame = None  # the __main__ module's frame: how it ended tells normal end from exit
    # the last SystemExit raised through sys.exit/exit/quit in the main thread, and where the
    # __main__ module's frame was then (its f_lasti): if the program ended by that SystemExit,
    # the frame stopped there
    exit: tuple[BaseException, int | None] | None = None
    uncaught: tuple[type, str] | None = None  # (type, traceback) of an uncaught exception
    signal: str | None = None  # a signal handed on to the program's own handler


_ending = _Ending()


def _install_exit_hooks() -> None:
    _ending.pid = os.getpid()
    if _ending.main_frame is None:
        _ending.main_frame = _main_frame()
    if _ending.installed:
        return
    _ending.installed = True
    previous = sys.excepthook

    def excepthook(tp, value, tb):
        if os.getpid() == _ending.pid:
            _ending.uncaught = (tp, "".join(traceback.format_exception(tp, value, tb)))
        previous(tp, value, tb)

    sys.excepthook = excepthook
    _watch_exits()
    _install_signal_handlers()


def _main_frame():
    """The frame running the __main__ module's code (outermost, for `python -m` too)."""
    main = getattr(sys.modules.get("__main__"), "__dict__", None)
    found, frame = None, sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main and frame.f_code.co_name == "<module>":
            found = frame
        frame = frame.f_back
    return found


def _watch_exits() -> None:
    """sys.exit, exit and quit note the SystemExit they raise (its code is gone at atexit)."""

    def watch(original):
        @functools.wraps(original)
        def exit(*args, **kwargs):
            try:
                original(*args, **kwargs)
            except SystemExit as e:
                if os.getpid() == _ending.pid and threading.current_thread() is _MAIN_THREAD:
                    frame = _ending.main_frame
                    _ending.exit = (e, frame.f_lasti if frame is not None else None)
                raise

        return exit

    original = sys.exit
    sys.exit = watch(original)
    for name in ("exit", "quit"):  # the site module's builtins, used in scripts too
        if hasattr(builtins, name):
            setattr(builtins, name, watch(getattr(builtins, name)))
    # `from sys import exit` in the script, before track(): that name too
    main = getattr(sys.modules.get("__main__"), "__dict__", {})
    for name, value in list(main.items()):
        if value is original:
            main[name] = sys.exit


def _install_signal_handlers() -> None:
    if threading.current_thread() is not _MAIN_THREAD:
        return  # only the main thread may set handlers
    for name in _END_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue  # Windows has no SIGHUP
        previous = signal.getsignal(signum)
        # ignored stays ignored; Python's own SIGINT handler raises KeyboardInterrupt, which the
        # excepthook sees (and asyncio.run checks that it is still installed)
        if previous in (signal.SIG_IGN, None, signal.default_int_handler):
            continue
        try:
            signal.signal(signum, functools.partial(_on_signal, previous))
        except (ValueError, OSError):  # not the main interpreter
            return


def _on_signal(previous, signum, frame) -> None:
    name = signal.Signals(signum).name
    mine = os.getpid() == _ending.pid and _tracked is not None and _tracked.finished_at is None
    if callable(previous):  # the program's own handler decides what the signal does
        if mine:
            _ending.signal = name
        previous(signum, frame)
        return
    busy = _inside_database_call(frame)
    if mine:
        error = f"terminated by {name}"
        _record_end(_tracked, "aborted", error, {"signal": name}, journal_only=busy)
    if not busy:
        try:
            from .spool import flush_all

            flush_all()  # what engine sinks of this process hold, before dying
        except Exception:  # noqa: BLE001 - dying anyway
            pass
    signal.signal(signum, signal.SIG_DFL)  # die of the signal, as without flowprov
    os.kill(os.getpid(), signum)


_DATABASE_MODULES = ("flowprov.store", "flowprov.db", "sqlalchemy", "sqlite3", "psycopg")


def _inside_database_call(frame) -> bool:
    """Was the program stopped inside a database call (its transaction may hold SQLite's write
    lock, which a write from the handler would wait for in vain)?"""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES):
            return True
        frame = frame.f_back
    return False


def _ended_normally(frame) -> bool | None:
    """Did the __main__ module run to its end (None: cannot tell)? A module frame that raised
    stops at the raising instruction; one that ran to its end stops at its return."""
    if frame is None:
        return None
    try:
        return dis.opname[frame.f_code.co_code[frame.f_lasti]] in _RETURNS
    except (IndexError, TypeError):
        return None


def _exit_code(exc: BaseException) -> tuple[int, str | None]:
    """(exit status the shell sees, message) of a SystemExit, as the interpreter computes it."""
    code = getattr(exc, "code", None)
    if code is None:
        return 0, None
    if isinstance(code, int):
        return (code & 0xFF if os.name == "posix" else code), None
    return 1, str(code)  # sys.exit("message") prints it and exits 1


def _outcome() -> tuple[str, str | None, dict]:
    """(status, error, exit) of the tracked script, at interpreter exit."""
    frame = _ending.main_frame
    normal = _ended_normally(frame)
    if normal:
        return "completed", None, {"code": 0}
    if _ending.uncaught is not None:
        tp, text = _ending.uncaught
        if issubclass(tp, KeyboardInterrupt):
            return (
                "aborted",
                f"interrupted by SIGINT (KeyboardInterrupt)\n{text}",
                {"signal": "SIGINT"},
            )
        return "failed", text, {"code": 1}
    if _ending.exit is not None and (frame is None or _ending.exit[1] == frame.f_lasti):
        code, message = _exit_code(_ending.exit[0])
        if code == 0:
            return "completed", None, {"code": 0}
        return "failed", f"exit code {code}" + (f": {message}" if message else ""), {"code": code}
    if normal is None:  # no main frame to look at (tracked from a thread): nothing says failed
        return "completed", None, {"code": 0}
    return (
        "unknown",
        "stopped before its end by an exception flowprov could not see, so its exit code is "
        "unknown (it may have succeeded): a `raise SystemExit(...)` — call sys.exit(...) instead, "
        "so that the code is recorded — or an error shown by the program's own sys.excepthook",
        {"code": None},
    )


def _finish_at_exit() -> None:
    run = _tracked
    if run is None or run.finished_at is not None or os.getpid() != _ending.pid:
        return
    status, error, exit = _outcome()
    if _ending.signal:  # handed to the program's own handler, which then ended the program
        exit["signal_received"] = _ending.signal
        error = f"{error} (after {_ending.signal})" if error else error
    _record_end(run, status, error, exit)
    if exit.get("signal") == "SIGINT":
        _keep_death_by_sigint()


def _keep_death_by_sigint() -> None:
    """After an uncaught KeyboardInterrupt, CPython dies of SIGINT once finalized (the shell sees
    130) — unless code run at exit executed a string (namedtuple, dataclass, a first import of
    such a module): that clears its flag and the exit status becomes 1. An uncaught
    KeyboardInterrupt raised through exec() sets the flag again; nothing else is changed."""
    try:
        exec("raise KeyboardInterrupt")
    except KeyboardInterrupt:
        pass


# Registered on import (atexit runs the last registered first): the run's end is recorded after
# the exit functions registered later — the program's own, the engines' sinks — have run.
atexit.register(_finish_at_exit)


def _record_end(
    run, status: str, error: str | None, exit: dict, journal_only: bool = False
) -> None:
    """Finish the run through the background sink: in its journal on local disk first, then in
    the store (kept for `flowprov replay` if the store cannot be reached). `journal_only`: only
    the journal — the next flowprov process, or `flowprov replay`, applies it. Never raises."""
    global _tracked
    from .events import RunFinished, RunRef

    _let_go(run)
    try:
        # the software was recorded when the run started; its end adds how it ended
        event = RunFinished(
            run=RunRef(uid=run.uid), status=status, error=error, runtime={"exit": exit}
        )
        if journal_only:
            from .spool import Sink

            sink = background_sink(run)
            # a sink of its own, buffered: written to its journal now, never to the store
            Sink(sink.spool_path, source="API", instance=sink.instance).send([event], buffered=True)
            logger.warning(
                "Run('%s') was stopped inside a database call: its end (%s) is kept on local disk;"
                " `flowprov replay` applies it",
                run.uid,
                status,
            )
        else:
            sink = background_sink(run)
            sink.send([event])
            sink.close()  # the process is ending: its journal, all applied, is removed
    except Exception as e:  # noqa: BLE001 - at exit there is no one to raise to
        logger.warning("could not record the end of Run('%s'): %s", run.uid, e)
        return
    if _tracked is run:
        _tracked = None
    logger.info(
        "finished Run('%s'): %s%s", run.uid, status, f" ({error.splitlines()[0]})" if error else ""
    )


def _ensure_log_handler() -> None:
    """Scripts and notebooks that call track() see flowprov's INFO messages on stderr."""
    if any(getattr(h, "_flowprov", False) for h in logger.handlers):
        return
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("flowprov: %(message)s"))
    h._flowprov = True  # type: ignore[attr-defined]
    logger.addHandler(h)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
