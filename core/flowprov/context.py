"""The current run: `fp.track()` / `fp.finish()` for scripts and notebooks, `with Run(...)`.

`track()` makes a Transform for the calling script or notebook — keyed by its path (relative to
the enclosing git repository, else its file name), versioned by its source code (a notebook's
code cells only, so re-executing it does not make a new version) — and starts a Run of it.
A script's run is finished at interpreter exit if `finish()` was not called: "completed", or
"failed" with the traceback of an uncaught exception.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import json
import logging
import os
import platform
import sys
import traceback
from pathlib import Path

from .errors import NoCurrentRun, ValidationError

logger = logging.getLogger("flowprov")

_current_run: contextvars.ContextVar = contextvars.ContextVar("flowprov_run", default=None)
_tracked = None  # the run of fp.track(), visible from every thread
_uncaught: list = []


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
    if artifact.run_id is not None and artifact.run_id == run.save().id:
        return  # reading one's own output is not an input
    background_sink().send(
        [ArtifactUsed(run=RunRef(uid=run.uid), artifact=ArtifactRef(uid=artifact.uid))]
    )


_background = None


def background_sink():
    """Where the API's background writes go — a run input noticed by cache()/load()/open(), the
    tracked run's end at exit: to the store, or, when it cannot be reached, to a spool file in the
    cache folder (`flowprov replay` applies it), with one warning. The user's code goes on."""
    global _background
    from . import config as C

    path = C.locate_instance_config()
    if _background is None or _background.instance != str(path):
        from ._settings import settings
        from .spool import Sink

        spool = settings.cache_dir / "spool" / f"{path.stem}.jsonl"
        _background = Sink(spool, source="API", instance=str(path))
    return _background


def environment(packages: bool = False) -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform()}
    if packages:
        env["packages"] = imported_packages()
    return env


@functools.cache
def _distributions() -> dict:
    """Top-level module → distributions, read once per process (scanning site-packages costs
    ~0.5 s here; what is installed does not change under a running process in practice)."""
    from importlib.metadata import packages_distributions

    return packages_distributions()


@functools.cache
def _version(dist: str) -> str | None:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:  # noqa: BLE001 - broken metadata must not break a run
        return None


def imported_packages() -> dict[str, str]:
    """Versions of the distributions whose top-level modules this process has imported."""
    dists = _distributions()
    out: dict[str, str] = {}
    for mod in list(sys.modules):
        if "." in mod or mod.startswith("_"):
            continue
        for dist in dists.get(mod, ()):
            if dist not in out and (v := _version(dist)) is not None:
                out[dist] = v
    return dict(sorted(out.items()))


# -- what is running us ----------------------------------------------------------------------
def _ipython():
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def _is_notebook(ip) -> bool:
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def notebook_path(ip) -> Path | None:
    """The notebook file of this kernel, as Jupyter and VS Code tell it to the kernel."""
    ns = getattr(ip, "user_ns", {}) or {}
    for candidate in (
        ns.get("__vsc_ipynb_file__"),  # VS Code
        os.environ.get("JPY_SESSION_NAME"),  # Jupyter Server ≥ 2 (and nbclient runs that set it)
        ns.get("__session__"),  # ipykernel ≥ 6.x copies JPY_SESSION_NAME here
    ):
        if candidate and str(candidate).endswith(".ipynb") and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def project_key(path: Path, within: Path | None = None) -> str:
    """The path relative to the enclosing git work tree, else to `within` if inside it, else the
    file name: stable across machines and checkouts, unlike an absolute path."""
    for parent in path.parents:
        if (parent / ".git").exists():
            return path.relative_to(parent).as_posix()
    if within is not None:
        try:
            return path.relative_to(within.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


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
        p = notebook_path(ip)
        if p is None:
            raise ValidationError(
                "cannot find this notebook's file from the kernel (no JPY_SESSION_NAME or "
                "__vsc_ipynb_file__): call fp.track(path='analysis.ipynb')"
            )
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
        _tracked.finish()
    _ensure_log_handler()
    transform.save()
    run = Run(transform=transform, params=params).save()
    from .instance import current

    current().storages()  # known from the start: reads keep working if the database goes away
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
    run.finish(status, error)
    logger.info("finished Run('%s'): %s", run.uid, status)
    return run


_hooks_installed = False


def _install_exit_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(tp, value, tb):
        _uncaught.append("".join(traceback.format_exception(tp, value, tb)))
        previous(tp, value, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_at_exit)


def _finish_at_exit() -> None:
    if _tracked is None or _tracked.finished_at is not None:
        return
    run = _tracked
    status, error = ("failed", _uncaught[-1]) if _uncaught else ("completed", None)
    try:
        finish(status, error)
    except Exception as e:  # noqa: BLE001 - at exit there is no one to raise to
        from .errors import DatabaseUnavailable

        if isinstance(e, DatabaseUnavailable):  # keep the end of the run for `flowprov replay`
            from .events import RunFinished, RunRef

            background_sink().send(
                [
                    RunFinished(
                        run=RunRef(uid=run.uid),
                        status=status,
                        error=error,
                        environment=environment(packages=True),
                    )
                ]
            )
        else:
            logger.warning("could not finish Run('%s') at exit: %s", run.uid, e)


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
